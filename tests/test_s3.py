"""dataset=bps and export.s3 against a real S3-protocol server (moto) on 127.0.0.1, with unsigned reads."""

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpsrun.data.bps import Subset, parse_meta, select_subset
from bpsrun.data.s3 import S3Location, safe_path
from bpsrun.errors import BpsrunError
from bpsrun.plugins import build
from tests.conftest import REPO, TINY, compose_config, run_command
from tests.s3server import BUCKET, CREDENTIALS, PREFIX, ProcessS3Server, S3Server, bps_like

# every secret bpsrun reads from the environment, with values that cannot occur by chance
SECRETS = {**CREDENTIALS, "LIGHTLY_TOKEN": "lightly-token-7f3a9c", "LABEL_STUDIO_API_KEY": "ls-key-0c8e5d"}

LEVELS = {"Fe": {"low": 0.0, "med": 0.3, "hi": 0.82}, "X-ray": {"low": 0.0, "med": 0.1, "hi": 1.0}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s3 = S3Server()
    s3.public_bucket(BUCKET)
    s3.upload_bps(BUCKET, bps_like(tmp_path_factory.mktemp("bucket-src")))
    yield s3
    s3.stop()


def bps_args(server: S3Server, cache: Path) -> list[str]:
    return ["dataset=bps", f"dataset.endpoint_url={server.url}", f"dataset.cache_dir={cache}", "dataset.backoff_s=0.05"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_subset_filter_by_hand():
    meta = (
        b"filename,dose_Gy,particle_type,hr_post_exposure\n"
        b"a.tif,0.82,Fe,4\nb.tif,1.0,X-ray,4\nc.tif,0.82,Fe,24\nd.tif,0.3,Fe,4\n"
        b"e.tif,0.1,X-ray,4\nf.tif,0.0,X-ray,4\ng.tif,1.0,X-ray,4\nh.tif,0.0,Fe,48\n"
    )
    rows = parse_meta(meta, "meta.csv")
    names = lambda kept: [r["filename"] for r in kept]  # noqa: E731
    assert names(select_subset(rows, Subset(dose_levels=LEVELS), "meta.csv")) == ["a.tif", "b.tif", "g.tif"]
    low = Subset(doses=("low",), hours=(4, 48), dose_levels=LEVELS)
    assert names(select_subset(rows, low, "meta.csv")) == ["f.tif", "h.tif"]
    med_fe = Subset(doses=("med",), particles=("Fe",), dose_levels=LEVELS)
    assert names(select_subset(rows, med_fe, "meta.csv")) == ["d.tif"]
    # caps keep a fixed choice: one X-ray of b and g, the same one whatever else is listed
    capped = names(select_subset(rows, Subset(max_per_class=1, dose_levels=LEVELS), "meta.csv"))
    assert len(capped) == 2 and "a.tif" in capped
    fewer = names(select_subset(rows[:2] + rows[6:7], Subset(max_per_class=1, dose_levels=LEVELS), "meta.csv"))
    assert fewer == capped
    with pytest.raises(BpsrunError, match="no image matches dataset.subset"):
        select_subset(rows, Subset(hours=(12,), dose_levels=LEVELS), "meta.csv")
    with pytest.raises(BpsrunError, match=r"missing column\(s\) \['hr_post_exposure'\]"):
        parse_meta(b"filename,dose_Gy,particle_type\na.tif,1,Fe\n", "meta.csv")


@pytest.mark.parametrize("name", ["../evil.tif", "/etc/passwd", "a/../../evil.tif", "..", "sub\\..\\x.tif"])
def test_escaping_names_are_refused(tmp_path, name):
    with pytest.raises(BpsrunError, match="escape the cache folder"):
        safe_path(tmp_path / "cache", name, "meta.csv")
    assert safe_path(tmp_path / "cache", "sub/ok.tif", "meta.csv") == (tmp_path / "cache" / "sub" / "ok.tif").resolve()


@pytest.mark.slow
def test_escaping_key_in_the_bucket_fails_before_any_download(server, tmp_path):
    server.public_bucket("escaping-bucket")
    meta = b"filename,dose_Gy,particle_type,hr_post_exposure\nok.tif,0.82,Fe,4\n../../evil.tif,1.0,X-ray,4\n"
    server.client().put_object(Bucket="escaping-bucket", Key=PREFIX + "meta.csv", Body=meta)
    server.client().put_object(Bucket="escaping-bucket", Key=PREFIX + "../../evil.tif", Body=b"x")
    cache = tmp_path / "cache"
    proc = run_command(
        *bps_args(server, cache), "dataset.bucket=escaping-bucket", outputs=tmp_path / "out", check=False
    )
    assert proc.returncode == 2
    assert "'../../evil.tif' would escape the cache folder" in proc.stderr
    assert not list(tmp_path.rglob("evil.tif"))
    assert not (tmp_path / "out" / "bps-active-s0" / "campaign.json").exists()


@pytest.mark.slow
def test_two_round_campaign_from_the_local_server(server, tmp_path):
    cache = tmp_path / "cache"
    run_command(*bps_args(server, cache), "round=2", "labeling=oracle", outputs=tmp_path / "out")
    root = tmp_path / "out" / "bps-active-s0"
    manifest = read_rows(root / "manifest.csv")
    # the default subset, Gy-hi at 4 h, and nothing else
    assert manifest and all(r["hr_post_exposure"] == "4" for r in manifest)
    assert {(r["particle_type"], r["dose_Gy"]) for r in manifest} == {("Fe", "0.82"), ("X-ray", "1.0")}
    listed = [
        r for r in parse_meta(server.client().get_object(Bucket=BUCKET, Key=PREFIX + "meta.csv")["Body"].read(), "m")
    ]
    expected = {r["filename"] for r in listed if r["hr_post_exposure"] == "4" and r["dose_Gy"] in ("0.82", "1.0")}
    assert {r["file"] for r in manifest} == expected
    # only the subset was downloaded, byte for byte
    mirror = cache / S3Location(BUCKET, endpoint_url=server.url).store / BUCKET / "Microscopy" / "train"
    assert {p.name for p in mirror.glob("*.tif")} == expected
    some = sorted(expected)[0]
    assert (mirror / some).read_bytes() == server.client().get_object(Bucket=BUCKET, Key=PREFIX + some)["Body"].read()
    # the split holds out whole wells: no well on both sides
    well = lambda f: f.split("_")[0] + f.split("-")[1].split("_")[0]  # noqa: E731
    train_wells = {well(r["file"]) for r in manifest if r["split"] == "train"}
    assert train_wells.isdisjoint(well(r["file"]) for r in manifest if r["split"] == "val")
    # the oracle's proxy truth: Fe -> track, X-ray -> no track
    particle = {r["file"]: r["particle_type"] for r in manifest}
    for k in (1, 2):
        labels = json.loads((root / f"round_{k}" / "labels.json").read_text())
        assert labels and all(
            rec["choice"] == {"Fe": "track", "X-ray": "no track"}[particle[rec["file_name"]]] for rec in labels
        )
        assert (root / f"round_{k}" / "metrics.json").exists()


def test_two_servers_with_one_bucket_name_do_not_share_a_cache(server, tmp_path):
    """The same bucket name on another S3 service (a lab's MinIO beside AWS) is another dataset: its own mirror."""
    other = ProcessS3Server()
    try:
        other.public_bucket(BUCKET)
        other.upload_bps(BUCKET, bps_like(tmp_path / "other-src", num_images=120))
        cache = tmp_path / "cache"
        found = {}
        for s3 in (server, other):
            cfg = compose_config(*bps_args(s3, cache), "dataset.subset.max_images=12", outputs=tmp_path / "out")
            found[s3.url] = build(cfg.dataset, "dataset")
        for s3, files in found.items():  # each mirror holds its own server's listing and bytes
            name = sorted(p.name for p in files.image_dir.glob("*.tif"))[0]
            client = server.client() if s3 == server.url else other.client()
            assert (files.image_dir / name).read_bytes() == client.get_object(Bucket=BUCKET, Key=PREFIX + name)[
                "Body"
            ].read()
    finally:
        other.stop()
    first, second = found[server.url], found[other.url]
    assert first.image_dir != second.image_dir and first.meta_csv != second.meta_csv
    assert first.meta_csv.read_bytes() != second.meta_csv.read_bytes()


@pytest.mark.slow
def test_download_resumes_after_the_server_stops(server, tmp_path):
    """Stop the server mid-download: the run fails clearly, keeps only whole files, and a rerun finishes."""
    cache = tmp_path / "cache"
    mirror = cache / S3Location(BUCKET, endpoint_url=server.url).store / BUCKET / "Microscopy" / "train"
    everything = ["dataset.subset.doses=[low,med,hi]", "dataset.subset.hours=[4,24,48]"]
    args = [
        sys.executable,
        "-m",
        "bpsrun",
        f"paths.outputs={tmp_path / 'out'}",
        *TINY,
        *bps_args(server, cache),
        *everything,
        "dataset.workers=1",
        "dataset.retries=0",  # each missing file fails at once once the server is gone
    ]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list(mirror.glob("*.tif"))) < 40 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    server.stop()
    try:
        _, stderr = proc.communicate(timeout=300)
    finally:
        server.restart()
    assert proc.returncode == 2, stderr[-2000:]
    assert "could not be downloaded" in stderr and "rerun the same command to fetch only what is missing" in stderr
    s3 = server.client()
    partial = list(mirror.glob("*.tif"))
    assert 40 <= len(partial) < 400
    for path in partial:  # no truncated file carries a final name
        assert path.read_bytes() == s3.get_object(Bucket=BUCKET, Key=PREFIX + path.name)["Body"].read()
    assert not list(mirror.glob(".*.part"))
    assert not (tmp_path / "out" / "bps-active-s0" / "manifest.csv").exists()  # the campaign has not started

    before = {p.name: p.stat().st_mtime_ns for p in partial}
    run_command(*bps_args(server, cache), *everything, outputs=tmp_path / "out")
    files = list(mirror.glob("*.tif"))
    assert len(files) == 400
    assert all((mirror / n).stat().st_mtime_ns == t for n, t in before.items())  # not fetched again
    for path in files:
        assert path.read_bytes() == s3.get_object(Bucket=BUCKET, Key=PREFIX + path.name)["Body"].read()


@pytest.mark.slow
def test_publish_lightly_datasource_and_republish_sends_nothing(server, tmp_path, shared_data):
    s3 = server.client()
    s3.create_bucket(Bucket="published", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    publish = ["export.s3.bucket=published", "export.s3.prefix=bps/", f"export.s3.endpoint_url={server.url}"]
    out = tmp_path / "out"
    run_command("round=1", *publish, outputs=out, data=shared_data, env=SECRETS)
    root = out / "synthetic-active-s0"
    listing = {o["Key"]: o for o in s3.list_objects_v2(Bucket="published", Prefix="bps/")["Contents"]}
    pool = [r["file"] for r in read_rows(root / "manifest.csv") if r["split"] == "train"]
    assert {k for k in listing if k.startswith("bps/data/")} == {f"bps/data/{f}" for f in pool}
    local = {f"bps/{p.relative_to(root).as_posix()}": p for p in (root / "lightly" / ".lightly").rglob("*.json")} | {
        f"bps/lightly/{p.relative_to(root / 'round_1' / 'lightly').as_posix()}": p
        for p in (root / "round_1" / "lightly" / ".lightly").rglob("*.json")
    }
    assert {k for k in listing if k.startswith("bps/lightly/")} == set(local)
    assert len([k for k in local if "/predictions/bps-classification/" in k and k.endswith(".json")]) == len(pool) + 1
    for key, path in local.items():  # read back byte for byte
        assert s3.get_object(Bucket="published", Key=key)["Body"].read() == path.read_bytes()
    some = pool[0]
    image = s3.get_object(Bucket="published", Key=f"bps/data/{some}")["Body"].read()
    assert image == Path(next(r["path"] for r in read_rows(root / "manifest.csv") if r["file"] == some)).read_bytes()

    proc = run_command("round=1", *publish, outputs=out, data=shared_data, env=SECRETS)
    sent = [int(n) for n in re.findall(r"published (\d+) new or changed of", proc.stdout + proc.stderr)]
    assert sent == [0, 0, 0]  # images, metadata, predictions
    again = {o["Key"]: o for o in s3.list_objects_v2(Bucket="published", Prefix="bps/")["Contents"]}
    assert {k: o["LastModified"] for k, o in again.items()} == {k: o["LastModified"] for k, o in listing.items()}
    # the keys came from the environment and stay out of every output: Hydra's configs and logs, MLflow's store
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files) and any(p.name == "config.yaml" for p in files)
    for value in SECRETS.values():
        assert not [p for p in files if value.encode() in p.read_bytes()]
