"""The Hydra callback that ends every `python -m bpsrun -m ...` with its sweep report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bpsrun.errors import BpsrunError

log = logging.getLogger("bpsrun")


class SweepReport(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir))  # resolved once: `${now:}` must not move

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from bpsrun.report.build import build_report

        try:
            build_report(self.sweep_dir)
        except BpsrunError as exc:  # the campaigns are done and saved; say why the summary is missing
            log.error("sweep report: %s", exc)
            print(f"bpsrun: sweep report failed: {exc}\nrerun it with: python -m bpsrun.report {self.sweep_dir}")
