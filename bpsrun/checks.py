"""One pass over the composed config before anything is written: each bad value is refused with one line naming the
key, the value and the fix (a `BpsrunError`), not a traceback from deep inside a stage, a folder outside
`paths.outputs`, or a round loop that holds the campaign lock for hours.

`check_config` runs at the top of `Campaign.run`; `CheckConfig` (a Hydra callback) runs it once more before Hydra
creates its own run folder under `paths.outputs`, so that `campaign=../x` or a read-only `paths.outputs` stops the
command before Hydra writes there.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from bpsrun.data.manifest import VAL_LABELS
from bpsrun.errors import BpsrunError
from bpsrun.numerics import KERNELS

MAX_ROUND = 1000  # far beyond any labeling budget; a typo like round=100000 must not loop holding the lock
SEED_MAX = 2**32 - 1  # numpy's and Lightning's seed range
MIN_SYNTHETIC_IMAGES = 10  # a validation set and a pool left to select from after the split
HEALTH_TIMEOUT_S = 5.0
NAME_MAX = 255
# MLflow stores bpsrun cannot probe cheaply (database drivers, Databricks): passed on to MLflow as they are
OTHER_MLFLOW_SCHEMES = ("file", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")


def check_config(cfg: DictConfig) -> None:
    """Refuse the first bad value of `cfg` (the composed bpsrun config) with a `BpsrunError`; return None if sound."""
    check_round(get(cfg, "round"))
    check_int("seed", get(cfg, "seed"), 0, SEED_MAX, "e.g. seed=0")
    check_split(cfg)
    check_selection(cfg)
    check_dataset(cfg)
    check_int("trainer.max_epochs", get(cfg, "trainer.max_epochs"), 1, None, "e.g. trainer.max_epochs=30")
    check_cpu_kernels(get(cfg, "trainer.cpu_kernels"))
    check_launcher(cfg)
    check_campaign(get(cfg, "campaign"))
    outputs = get(cfg, "paths.outputs")
    if outputs in (None, ""):
        raise BpsrunError("paths.outputs is empty; set it to the folder bpsrun writes into, e.g. paths.outputs=outputs")
    check_writable("paths.outputs", Path(str(outputs)))
    check_tracking_uri(get(cfg, "tracking.uri"))


class CheckConfig(Callback):
    """`hydra.callbacks.check_config`: the same checks before Hydra creates its run (or sweep) folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_on_the_command_line(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_on_the_command_line(config)  # the base config; each job checks its own in Campaign.run


def refuse_on_the_command_line(config: DictConfig) -> None:
    try:
        check_config(config)
    except BpsrunError as exc:
        print(f"bpsrun: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


# -- values ------------------------------------------------------------------------------------------------------


def get(cfg: DictConfig, key: str) -> Any:
    """The resolved value at dotted `key`, None if absent; an interpolation that cannot resolve is a one-line error."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception as exc:  # omegaconf's InterpolationResolutionError, MissingMandatoryValue, ...
        raise BpsrunError(f"{key}: cannot be resolved ({str(exc).splitlines()[0]}); set {key}=VALUE") from None
    return value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_round(value: Any) -> None:
    if not is_int(value) or value < 1:
        raise BpsrunError(f"round={value!r}: rounds count from 1; run e.g. `python -m bpsrun round=2`")
    if value > MAX_ROUND:
        raise BpsrunError(
            f"round={value}: at most {MAX_ROUND} rounds; ask for the round you mean to reach, e.g. round=5"
        )


def check_int(key: str, value: Any, low: int, high: int | None, example: str) -> None:
    if is_int(value) and value >= low and (high is None or value <= high):
        return
    bounds = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
    raise BpsrunError(f"{key}={value!r}: must be {bounds}; {example}")


def check_fraction(key: str, value: Any, example: str, *, one_allowed: bool = False) -> None:
    if is_number(value) and 0 < value and (value <= 1 if one_allowed else value < 1):
        return
    interval = "greater than 0 and at most 1" if one_allowed else "strictly between 0 and 1"
    raise BpsrunError(f"{key}={value!r}: must be a number {interval}; {example}")


def check_split(cfg: DictConfig) -> None:
    size = get(cfg, "split.val_size")
    if is_int(size):
        check_int("split.val_size", size, 1, None, "a number of images (e.g. 150) or a fraction (e.g. 0.2)")
    else:
        check_fraction("split.val_size", size, "a fraction (e.g. split.val_size=0.2) or a number of images (150)")
    source = get(cfg, "split.val_labels")
    if source not in VAL_LABELS:
        raise BpsrunError(f"split.val_labels={source!r}: use one of {', '.join(VAL_LABELS)}")
    if not isinstance(get(cfg, "split.require_val"), bool):
        raise BpsrunError(f"split.require_val={get(cfg, 'split.require_val')!r}: use true or false")


def check_selection(cfg: DictConfig) -> None:
    n = get(cfg, "selection.n_samples")
    if n is not None:
        check_int("selection.n_samples", n, 1, None, "the labels bought per round, e.g. selection.n_samples=30")
    p = get(cfg, "selection.proportion_samples")
    if p is not None:
        check_fraction(
            "selection.proportion_samples", p, "the share of the pool per round, e.g. 0.05", one_allowed=True
        )


def check_cpu_kernels(value: Any) -> None:
    if value not in KERNELS:
        raise BpsrunError(
            f"trainer.cpu_kernels={value!r}: use one of {', '.join(KERNELS)} (avx2: the same numbers on every x86-64 "
            f"CPU and thread count; native: the CPU's fastest kernels)"
        )


def check_dataset(cfg: DictConfig) -> None:
    target = str(get(cfg, "dataset._target_") or "")
    if not (get(cfg, "dataset.name") == "synthetic" or target.endswith("sources.synthetic")):
        return
    n = get(cfg, "dataset.num_images")
    if not is_int(n) or n < MIN_SYNTHETIC_IMAGES:
        raise BpsrunError(
            f"dataset.num_images={n!r}: the split and one round need at least {MIN_SYNTHETIC_IMAGES} images "
            f"(a validation set and a pool to select from); use e.g. dataset.num_images=800"
        )


def several_processes(cfg: DictConfig) -> bool:
    """Whether the Trainers would run more than one process: several devices or nodes."""
    nodes = get(cfg, "trainer.lightning.num_nodes") or 1
    return device_count(get(cfg, "trainer.lightning.devices"), get(cfg, "trainer.accelerator")) > 1 or (
        is_int(nodes) and nodes > 1
    )


def device_count(devices: Any, accelerator: Any) -> int:
    """Lightning's `devices` as a count (2, "2", [0, 1], "0,1"); all of them (-1, "-1", "auto" off the CPU)
    counts as several, since the node decides."""
    if isinstance(devices, str) and "," in devices:
        devices = [d for d in devices.split(",") if d.strip()]
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        return len(devices)
    if str(devices).strip() in ("-1", "auto"):
        return 1 if str(devices).strip() == "auto" and accelerator == "cpu" else 2
    return int(devices) if str(devices).strip().isdigit() else 1  # anything else: Lightning's to refuse


def check_launcher(cfg: DictConfig) -> None:
    """Several processes only through a spawning strategy (trainer=ddp): Lightning's `ddp` (and `auto`, which picks
    it) re-runs the whole command line in each extra process, a second campaign that would wait on the first's
    lock."""
    name = get(cfg, "trainer.lightning.strategy")
    if not (isinstance(name, str) and several_processes(cfg) and relaunches_command(name)):
        return
    key = "trainer.strategy" if get(cfg, "trainer.strategy") == name else "trainer.lightning.strategy"
    raise BpsrunError(
        f"{key}={name!r} with several devices starts each extra process by re-running the whole command (a second "
        f"campaign, waiting on the first's lock); use trainer=ddp (DDP with spawned processes) or {key}=ddp_spawn"
    )


def relaunches_command(strategy: str) -> bool:
    """Whether Lightning's strategy `strategy` starts its other processes by re-running the command line."""
    if strategy == "auto":
        return True  # several devices: Lightning picks "ddp"
    from pytorch_lightning.strategies import DDPStrategy, FSDPStrategy, StrategyRegistry

    entry = StrategyRegistry[strategy] if strategy in StrategyRegistry else None  # unknown: Lightning's to refuse
    return entry is not None and (
        issubclass(entry["strategy"], (DDPStrategy, FSDPStrategy))
        and entry["init_params"].get("start_method", "popen") == "popen"
    )


def check_campaign(value: Any) -> None:
    """A single, visible path component: `campaign` names a folder inside paths.outputs and nothing else."""
    fix = "use a plain name such as campaign=my-run"
    if not isinstance(value, str):
        raise BpsrunError(f"campaign={value!r}: not a name; {fix}")
    if not value.strip():
        raise BpsrunError(f"campaign={value!r}: empty; {fix}")
    bad = next((ch for ch in value if unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs")), None)
    if bad is not None:
        raise BpsrunError(f"campaign={value!r}: has a control character (U+{ord(bad):04X}); {fix}")
    if "/" in value or "\\" in value:
        raise BpsrunError(
            f"campaign={value!r}: a campaign is one folder inside paths.outputs, not a path (no '/' or '\\'); "
            f"{fix}, and paths.outputs=DIR to write elsewhere"
        )
    if value.startswith("."):
        raise BpsrunError(f"campaign={value!r}: must not start with '.' ('..' leaves paths.outputs); {fix}")
    if len(value.encode()) > NAME_MAX - 40:  # room for `.<name>.<pid>.<random>.tmp` siblings
        raise BpsrunError(f"campaign={value[:40]!r}...: longer than {NAME_MAX - 40} bytes; {fix}")


# -- places --------------------------------------------------------------------------------------------------------


def writable(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def check_writable(key: str, path: Path, *, shown: str | None = None) -> None:
    """`path` is a folder bpsrun can write into, or can be created: its nearest existing ancestor is a writable
    folder. Nothing is created here."""
    shown = shown or f"{key}={path}"
    probe = path
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise BpsrunError(f"{shown}: {probe} is not a folder; set {key} to a folder bpsrun can write into")
    if not writable(probe):
        where = "" if probe == path else f" ({probe} exists and cannot hold new folders)"
        raise BpsrunError(
            f"{shown}: not writable{where}; set {key} to a folder you can write into, or fix its permissions"
        )


def check_tracking_uri(uri: Any) -> None:
    fix = "tracking.uri=sqlite:///PATH/mlflow.db or tracking.uri=http://HOST:PORT"
    if not isinstance(uri, str) or not uri.strip():
        raise BpsrunError(f"tracking.uri={uri!r}: empty; use {fix}")
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme == "sqlite":
        check_sqlite(uri, fix)
    elif scheme in ("http", "https"):
        if not parsed.hostname:
            raise BpsrunError(f"tracking.uri={redacted(uri)!r}: no host; use {fix}")
        check_server(uri)
    elif scheme == "" and not uri.startswith("//"):  # a folder: MLflow's file store
        check_writable("tracking.uri", Path(uri), shown=f"tracking.uri={uri}")
    elif scheme in OTHER_MLFLOW_SCHEMES or "+" in scheme:  # e.g. postgresql+psycopg2: MLflow's to connect
        return
    else:
        raise BpsrunError(
            f"tracking.uri={redacted(uri)!r}: not an MLflow store bpsrun knows (scheme {scheme!r}); use {fix}"
        )


def redacted(uri: str) -> str:
    """`uri` without a password (`http://user:***@host`), for messages."""
    parsed = urlparse(uri)
    if parsed.password is None:
        return uri
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)).geturl()


def check_sqlite(uri: str, fix: str) -> None:
    if not uri.startswith("sqlite:///") or uri == "sqlite:///":
        raise BpsrunError(
            f"tracking.uri={uri!r}: a sqlite store is sqlite:///relative/path.db or sqlite:////absolute/path.db; "
            f"use {fix}"
        )
    db = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    if db.is_dir():
        raise BpsrunError(f"tracking.uri={uri}: {db} is a folder; name the database file, e.g. {db / 'mlflow.db'}")
    if db.exists() and not os.access(db, os.R_OK | os.W_OK):
        raise BpsrunError(f"tracking.uri={uri}: {db} is not writable; fix its permissions or use another tracking.uri")
    check_writable("tracking.uri", db.parent, shown=f"tracking.uri={uri}")


def check_server(uri: str) -> None:
    """`GET <uri>/health` once: a server that is down fails here in seconds, not after MLflow's retries."""
    import requests

    url = uri.rstrip("/") + "/health"
    shown, shown_url = redacted(uri), redacted(url)
    try:
        response = requests.get(url, timeout=HEALTH_TIMEOUT_S, auth=server_auth(), allow_redirects=True)
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise BpsrunError(
            f"tracking.uri={shown}: no MLflow server answers ({reason} on GET {shown_url} within "
            f"{HEALTH_TIMEOUT_S:g} s); start it (mlflow server --port ...) or set tracking.uri= to a running server "
            f"or sqlite:///PATH"
        ) from None
    if response.status_code == 404 or response.status_code >= 500:
        raise BpsrunError(
            f"tracking.uri={shown}: GET {shown_url} answered HTTP {response.status_code}; is this an MLflow "
            f"tracking server? set tracking.uri= to its address"
        )


def server_auth() -> tuple[str, str] | None:
    """MLflow's basic-auth settings, if any (a server with auth may still answer /health without them)."""
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    return (user, password) if user and password else None
