"""`bpsrun [overrides]` (or `python -m bpsrun`): compose the Hydra config and bring the campaign up to `round`.

`bpsrun --help` lists the config groups and their choices; `bpsrun --cfg job` prints the composed config.
`bpsrun predict --model URI --images DIR --out DIR` classifies a folder with a logged model instead
(bpsrun.serve.predict): `main` hands a first argument `predict` to it before Hydra parses the command line.
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
def campaign(cfg: DictConfig) -> float:
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)  # tips and device banners
    from bpsrun.campaign import Campaign

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


def main() -> None:
    if sys.argv[1:2] == ["predict"]:
        from bpsrun.serve.predict import main as predict  # here: the campaign's start imports nothing it needs

        predict(sys.argv[2:])
    else:
        campaign()


if __name__ == "__main__":
    main()
