"""`bpsrun [overrides]` (or `python -m bpsrun`): compose the Hydra config and bring the campaign up to `round`.

`bpsrun --help` lists the config groups and their choices; `bpsrun --cfg job` prints the composed config.
"""

from __future__ import annotations

import logging
import sys
import warnings

import hydra
from omegaconf import DictConfig

from bpsrun.config_path import config_dir
from bpsrun.errors import AwaitingLabels, BpsrunError

log = logging.getLogger("bpsrun")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)  # tips and device banners
    from bpsrun.campaign import Campaign

    if cfg.trainer.get("threads"):
        import torch

        torch.set_num_threads(int(cfg.trainer.threads))
    try:
        return Campaign(cfg).run()
    except AwaitingLabels as exc:
        log.info("%s", exc)
        print(f"bpsrun: awaiting labels: {exc}", file=sys.stderr, flush=True)
        sys.exit(3)
    except BpsrunError as exc:
        log.error("%s", exc)
        print(f"bpsrun: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
