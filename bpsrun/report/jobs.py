"""A sweep folder's jobs: each campaign's config and the folder it ran from.

A sweep folder is what Hydra's multirun wrote: one subfolder per job holding `.hydra/config.yaml` (the job's
config) and `.hydra/hydra.yaml` (the folder it ran from, its config-group choices and its overrides). Relative
paths in a job's config are relative to that folder, so the report can be rebuilt from anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bpsrun.errors import BpsrunError


@dataclass
class Job:
    cfg: DictConfig
    cwd: Path  # where the job ran: relative paths in cfg start here
    choices: dict[str, str]  # what may tell it apart from the sweep's other jobs

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.cwd / p

    @property
    def root(self) -> Path:
        return self.path(self.cfg.paths.outputs) / self.cfg.campaign

    @property
    def tracking_uri(self) -> str:
        uri = str(self.cfg.tracking.uri)
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            return f"sqlite:///{self.path(uri.removeprefix('sqlite:///'))}"
        return uri


def job_choices(hydra_cfg: DictConfig) -> dict[str, str]:
    """Config-group choices by group (`model: small_cnn`, those a recipe chose included), then the other overrides
    as written (`round=3`); `seed` and Hydra's own groups are left out: seeds pair arms, they are no arm."""
    groups = OmegaConf.to_container(hydra_cfg.hydra.runtime.choices)
    out = {k: str(v) for k, v in groups.items() if v is not None and not k.startswith("hydra/")}
    for override in OmegaConf.to_container(hydra_cfg.hydra.overrides.task):  # as written: `${...}` unresolved
        key = override.partition("=")[0].lstrip("+~")
        if key != "seed" and key not in groups:
            out[key] = override
    return out


def read_jobs(sweep_dir: Path) -> list[Job]:
    if not sweep_dir.is_dir():
        raise BpsrunError(f"{sweep_dir}: no such sweep folder; give the folder a multirun wrote (outputs/multirun/...)")
    jobs = []
    for config in sorted(sweep_dir.glob("*/.hydra/config.yaml")):
        hydra_yaml = OmegaConf.load(config.with_name("hydra.yaml"))
        jobs.append(Job(OmegaConf.load(config), Path(hydra_yaml.hydra.runtime.cwd), job_choices(hydra_yaml)))
    if not jobs:
        raise BpsrunError(f"{sweep_dir}: holds no Hydra jobs (*/.hydra/config.yaml); is it a multirun folder?")
    return jobs
