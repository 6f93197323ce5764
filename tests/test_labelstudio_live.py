"""labeling=labelstudio in live mode against a real Label Studio server, started detached by the launcher.

The environment is `BPSRUN_LABEL_STUDIO_VENV` or `.venv-labelstudio` in the repository, reused when present and
created from nothing otherwise (about a minute to install, under a minute to start).
"""

import csv
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, bpsrun_command, run_command, snapshot
from tests.s3server import BUCKET, ProcessS3Server, bps_like
from tests.test_labelstudio_server import free_port

pytestmark = pytest.mark.slow  # whole campaigns of the command, real servers

CLASSES = ["track", "no track"]


@pytest.fixture(scope="module")
def studio(label_studio):
    """(url, token, document root) of the session's Label Studio."""
    return label_studio["url"], label_studio["token"], Path(label_studio["document_root"])


def api(url: str, token: str, method: str, path: str, **kwargs):
    response = requests.request(method, url + path, headers={"Authorization": f"Token {token}"}, timeout=30, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


def project_tasks(url: str, token: str, campaign: str) -> list[dict]:
    """Every task of the campaign's project, with its annotations and predictions (Label Studio's full JSON)."""
    projects = api(url, token, "GET", "/api/projects", params={"page_size": 1000})["results"]
    pid = next(p["id"] for p in projects if p["title"] == campaign)
    return api(
        url, token, "GET", f"/api/projects/{pid}/export", params={"exportType": "JSON", "download_all_tasks": "true"}
    )


def annotate(url: str, token: str, task_id: int, label: str) -> None:
    result = [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]
    api(url, token, "POST", f"/api/tasks/{task_id}/annotations", json={"result": result})


def test_live_round_trip(studio, shared_data):
    url, token, outputs = studio
    env = {"LABEL_STUDIO_API_KEY": token}
    live = ("labeling=labelstudio", f"labeling.url={url}", "campaign=live")

    first = run_command(*live, "round=1", outputs=outputs, data=shared_data, env=env, check=False)
    assert first.returncode == 3, first.stderr[-3000:]
    assert "round 1: 0 of 8 images labeled in Label Studio" in first.stderr
    tasks = project_tasks(url, token, "live")
    picks = (outputs / "live" / "round_1" / "selected.txt").read_text().splitlines()
    assert sorted(t["data"]["file_name"] for t in tasks) == sorted(picks)
    package = outputs / "live" / "round_1" / "labelstudio"
    assert (package / "tasks.json").exists() and not (package / "NEXT_STEPS.txt").exists()  # file mode's steps

    # a rerun imports nothing twice
    again = run_command(*live, "round=1", outputs=outputs, data=shared_data, env=env, check=False)
    assert again.returncode == 3
    assert len(project_tasks(url, token, "live")) == len(picks)

    # Label Studio serves the renders through its local-files endpoint
    image = requests.get(url + tasks[0]["data"]["image"], headers={"Authorization": f"Token {token}"}, timeout=30)
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"

    # a labeler labels every task; the first task is relabeled, and the newer annotation wins
    annotate(url, token, tasks[0]["id"], CLASSES[1])
    wanted = {}
    for k, task in enumerate(tasks):
        annotate(url, token, task["id"], CLASSES[k % 2])
        wanted[task["data"]["file_name"]] = CLASSES[k % 2]
    run_command(*live, "round=1", outputs=outputs, data=shared_data, env=env)
    labels = json.loads((outputs / "live" / "round_1" / "labels.json").read_text())
    assert {r["file_name"]: r["choice"] for r in labels} == wanted

    # round 2 with pre-annotations, waiting: the command polls while the labeler works
    cmd = bpsrun_command(
        *live, "round=2", "labeling.wait=true", "labeling.poll_s=1", "labeling.preannotate=true",
        outputs=outputs, data=shared_data,
    )  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    round2 = []
    while len(round2) < 8 and time.time() < deadline and proc.poll() is None:
        time.sleep(1)
        round2 = [t for t in project_tasks(url, token, "live") if t["data"]["round"] == 2]
    assert len(round2) == 8, proc.communicate()[1][-3000:] if proc.poll() is not None else "round 2 tasks missing"
    for task in round2:  # the previous round's model, as a pre-annotation
        predictions = api(url, token, "GET", f"/api/tasks/{task['id']}")["predictions"]
        assert [p["model_version"] for p in predictions] == ["bpsrun-round-1"]
        assert predictions[0]["result"][0]["value"]["choices"][0] in CLASSES
    assert proc.poll() is None  # still waiting for labels
    for task in round2:
        annotate(url, token, task["id"], CLASSES[0])
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    labels2 = json.loads((outputs / "live" / "round_2" / "labels.json").read_text())
    assert {r["file_name"] for r in labels2} == {t["data"]["file_name"] for t in round2}
    assert all(r["choice"] == CLASSES[0] for r in labels2)

    # the token came from the environment and appears nowhere in the outputs
    leaked = [p for p in outputs.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert leaked == []


def test_document_root_mismatch_is_refused_before_any_import(studio, shared_data, tmp_path):
    url, token, served_root = studio
    env = {"LABEL_STUDIO_API_KEY": token}
    elsewhere = tmp_path / "elsewhere"  # not below the server's document root
    args = ("labeling=labelstudio", "campaign=misplaced", "round=1")
    assert run_command(*args, outputs=elsewhere, data=shared_data, check=False).returncode == 3  # file mode
    before = snapshot(elsewhere / "misplaced")

    proc = run_command(*args, f"labeling.url={url}", outputs=elsewhere, data=shared_data, env=env, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"bpsrun: error: Label Studio at {url} serves local files below {served_root} (its --document-root, "
        f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT) but labeling.document_root={elsewhere}; restart Label Studio "
        f"with --document-root {elsewhere}"
    )
    assert "Traceback" not in proc.stderr
    assert snapshot(elsewhere / "misplaced") == before
    projects = api(url, token, "GET", "/api/projects", params={"page_size": 1000})["results"]
    assert "misplaced" not in [p["title"] for p in projects]  # nothing left on the server either

    # labeling.document_root that does not hold the campaign: refused by bpsrun alone, naming the key
    inner = elsewhere / "misplaced" / "round_1"
    proc = run_command(*args, f"labeling.document_root={inner}", outputs=elsewhere, data=shared_data, check=False)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"bpsrun: error: the campaign folder {elsewhere / 'misplaced'} is not below labeling.document_root={inner}"
        )
    )
    assert snapshot(elsewhere / "misplaced") == before


def test_unreachable_server_and_missing_token_are_clear(tmp_path, shared_data, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    args = ("labeling=labelstudio", f"labeling.url={dead}")
    proc = run_command(*args, outputs=tmp_path, data=shared_data, env={"LABEL_STUDIO_API_KEY": "0" * 40}, check=False)
    assert proc.returncode == 2
    assert f"labeling.url={dead}: cannot reach Label Studio" in proc.stderr
    assert not (tmp_path / "synthetic-active-s0").exists()  # refused before anything was written
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    proc = run_command(*args, outputs=tmp_path, data=shared_data, check=False)
    assert proc.returncode == 2
    assert "labeling.url is set but LABEL_STUDIO_API_KEY is empty" in proc.stderr


# -- a campaign without ground truth: the validation sample is labeled in Label Studio too ---------------------


@pytest.fixture(scope="module")
def own_images(tmp_path_factory):
    """A folder of TIFFs with meta.csv and no truth file; the truth stays with the test (the "annotator")."""
    from bpsrun.data.synthetic import SyntheticSpec, generate

    synth = generate(SyntheticSpec(num_images=60, seed=1234), tmp_path_factory.mktemp("synth") / "s")
    folder = tmp_path_factory.mktemp("own") / "images"
    shutil.copytree(synth / "images", folder)
    shutil.copy(synth / "meta.csv", folder / "meta.csv")
    with open(synth / "truth.csv", newline="") as f:
        return folder, {row["filename"]: row["label"] for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    s3 = ProcessS3Server()  # its own process: moto's in-process state is shared with other modules' servers
    s3.public_bucket(BUCKET)
    s3.upload_bps(BUCKET, bps_like(tmp_path_factory.mktemp("bucket-src")))
    yield s3
    s3.stop()


def human_campaign(studio, args: tuple[str, ...], campaign: str, truth: dict[str, str]) -> Path:
    """Rounds 1-2 labeled over REST as an annotator would: round 1's picks by `truth` (the annotator's eye), every
    validation task "track" (so metrics computed on anything but these human labels would show it)."""
    url, token, outputs = studio
    env = {"LABEL_STUDIO_API_KEY": token}
    live = (*args, "labeling=labelstudio", f"labeling.url={url}", f"campaign={campaign}")
    first = run_command(*live, "round=2", outputs=outputs, env=env, check=False)
    assert first.returncode == 3, first.stderr[-3000:]
    root = outputs / campaign
    val = [r["file"] for r in csv.DictReader((root / "manifest.csv").open()) if r["split"] == "val"]
    assert f"round 1: 0 of 8 images labeled; 0 of {len(val)} validation images in Label Studio" in first.stderr
    tasks = project_tasks(url, token, campaign)
    kinds = {t["data"]["file_name"]: t["data"]["kind"] for t in tasks}
    picks1 = (root / "round_1" / "selected.txt").read_text().splitlines()
    assert kinds == {**{f: "training" for f in picks1}, **{f: "validation" for f in val}}
    for task in tasks:
        file = task["data"]["file_name"]
        annotate(url, token, task["id"], "track" if kinds[file] == "validation" else truth.get(file, "no track"))

    second = run_command(*live, "round=2", outputs=outputs, env=env, check=False)  # round 1 trains, round 2 asks
    assert second.returncode == 3, second.stderr[-3000:]
    assert "round 2: 0 of 8 images labeled in Label Studio" in second.stderr
    round1 = json.loads((root / "round_1" / "metrics.json").read_text())
    assert round1["confusion"][1] == [0, 0] and sum(round1["confusion"][0]) == len(val)
    round2 = [t for t in project_tasks(url, token, campaign) if t["data"]["round"] == 2]
    assert len(round2) == 8 and all(t["data"]["kind"] == "training" for t in round2)
    for task in round2:
        annotate(url, token, task["id"], truth.get(task["data"]["file_name"], "track"))
    run_command(*live, "round=2", outputs=outputs, env=env)

    # metrics on the human validation labels only; those labels never trained a model
    metrics = json.loads((root / "round_2" / "metrics.json").read_text())
    assert metrics["n_labeled"] == 16 and metrics["confusion"][1] == [0, 0]
    assert metrics["val_accuracy"] == pytest.approx(metrics["confusion"][0][0] / len(val))
    held_out = json.loads((root / "validation" / "labels.json").read_text())
    assert sorted(r["file_name"] for r in held_out) == sorted(val) and {r["choice"] for r in held_out} == {"track"}
    for r in (1, 2):
        trained = {rec["file_name"] for rec in json.loads((root / f"round_{r}" / "labels.json").read_text())}
        assert len(trained) == 8 and not trained & set(val)
    assert len(project_tasks(url, token, campaign)) == 16 + len(val)  # nothing imported twice
    return root


def test_a_folder_without_ground_truth_labeled_in_label_studio(studio, own_images):
    folder, truth = own_images
    root = human_campaign(studio, ("dataset=folder", f"dataset.path={folder}"), "own-folder", truth)
    assert not (root / "truth.csv").exists()


def test_the_bps_bucket_labeled_in_label_studio(studio, bucket, tmp_path):
    """dataset=bps has a particle-type proxy truth; split.val_labels=labeler validates on human labels instead."""
    cache = tmp_path / "cache"
    args = (
        "dataset=bps", f"dataset.endpoint_url={bucket.url}", f"dataset.cache_dir={cache}",
        "dataset.subset.max_images=60", "split.val_labels=labeler",
    )  # fmt: skip
    human_campaign(studio, args, "own-bps", truth={})
