"""`bpsrun [overrides]` (or `python -m bpsrun`): compose the Hydra config and bring the campaign up to `round`.

`bpsrun --help` lists the config groups and their choices; `bpsrun --cfg job` prints the composed config.
`bpsrun predict --model URI --images DIR --out DIR` classifies a folder with a logged model instead
(bpsrun.serve.predict), and `bpsrun pretrain images=DIR out=FILE` pretrains a self-supervised backbone on a folder
(conf/pretrain.yaml, bpsrun.embed.pretrain): `main` hands a first argument `predict` or `pretrain` to them before
Hydra parses the command line.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import hydra
from omegaconf import DictConfig

from bpsrun.config_path import config_dir
from bpsrun.errors import AwaitingLabels, BpsrunError

log = logging.getLogger("bpsrun")


@contextmanager
def reported() -> Iterator[None]:
    """Lightning's chatter off; a BpsrunError becomes one line and exit status 2 (3: awaiting labels)."""
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)  # tips and device banners
    try:
        yield
    except AwaitingLabels as exc:
        log.info("%s", exc)
        print(f"bpsrun: awaiting labels: {exc}", file=sys.stderr, flush=True)
        sys.exit(3)
    except BpsrunError as exc:
        log.error("%s", exc)
        print(f"bpsrun: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def campaign(cfg: DictConfig) -> float:
    with reported():
        from bpsrun.campaign import Campaign

        return Campaign(cfg).run()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="pretrain")
def pretrain(cfg: DictConfig) -> None:
    with reported():
        from bpsrun.embed.pretrain import run
        from bpsrun.numerics import configure

        configure(cfg)  # threads and CPU kernels, before the first torch kernel
        run(cfg)


def main() -> None:
    if sys.argv[1:2] == ["predict"]:
        from bpsrun.serve.predict import main as predict  # here: the campaign's start imports nothing it needs

        predict(sys.argv[2:])
    elif sys.argv[1:2] == ["pretrain"]:
        sys.argv[1:2] = []  # Hydra parses sys.argv
        pretrain()
    else:
        campaign()


if __name__ == "__main__":
    main()
