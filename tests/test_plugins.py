"""A new learner and a new labeler plug in through `_target_`: a class (tests/toy_parts.py) and a YAML
(tests/toy_conf/), found by Hydra's search path; nothing in bpsrun is edited."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bpsrun.errors import BpsrunError
from bpsrun.label.oracle import read_truth
from tests.conftest import compose_config, run_in_process

TOY_CONF = Path(__file__).resolve().parent / "toy_conf"


def test_a_toy_learner_and_labeler_run_a_campaign(tmp_path, shared_data):
    overrides = ("round=2", "model=nearest_mean", "labeling=first_half", "campaign=toy")
    run_in_process(*overrides, outputs=tmp_path, data=shared_data, conf=TOY_CONF)
    root = tmp_path / "toy"
    cfg = compose_config(*overrides, outputs=tmp_path, data=shared_data, conf=TOY_CONF)
    truth = read_truth(Path(cfg.dataset.cache_dir) / "synthetic-n60-s1234-binary" / "truth.csv", ["track", "no track"])
    for r in (1, 2):
        picks = (root / f"round_{r}" / "selected.txt").read_text().splitlines()
        labels = json.loads((root / f"round_{r}" / "labels.json").read_text())
        assert [rec["file_name"] for rec in labels] == picks[:4]  # the toy labeler's first half, nothing more
        assert {rec["annotator"] for rec in labels} == {"toy"}
        assert all(rec["choice"] == truth[rec["file_name"]] for rec in labels)
        metrics = json.loads((root / f"round_{r}" / "metrics.json").read_text())
        assert metrics["n_labeled"] == 4 * r
        means = np.load(root / f"round_{r}" / "model.pt")  # the toy learner's own format: one mean image per class
        assert means.shape == (2, cfg.model.image_size**2)
    # round 2 (active: entropy) read round 1's toy predictions: its picks are the most uncertain of the pool
    preds = root / "round_1" / "lightly" / ".lightly" / "predictions" / "bps-classification"
    margin = {}
    for f in preds.glob("*_proj.json"):
        rec = json.loads(f.read_text())
        margin[rec["file_name"]] = abs(rec["predictions"][0]["probabilities"][0] - 0.5)
    picked = (root / "round_2" / "selected.txt").read_text().splitlines()
    rest = set(margin) - set(picked) - set((root / "round_1" / "selected.txt").read_text().splitlines())
    assert max(margin[f] for f in picked) <= min(margin[f] for f in rest) + 1e-12


def test_a_part_without_target_is_named(tmp_path):
    with pytest.raises(BpsrunError, match=r"labeling: the config has no _target_"):
        run_in_process("~labeling._target_", outputs=tmp_path)
    assert not (tmp_path / "synthetic-active-s0").exists()  # refused before the campaign wrote anything


def test_the_old_scalar_keys_name_their_config_group(tmp_path):
    with pytest.raises(BpsrunError, match=r"use selection/backend=lightly_worker"):
        run_in_process("selection.backend=lightly_worker", outputs=tmp_path)


def test_the_lightly_worker_without_its_client_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    for module in ("lightly.api", "lightly.api.api_workflow_compute_worker"):  # as after lightly 1.6
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(BpsrunError, match=r"needs lightly's API client .*pip install -e '\.\[lightly-worker\]'"):
        run_in_process("selection=random", "selection/backend=lightly_worker", outputs=tmp_path)
    assert not any(p.name.startswith("synthetic") for p in tmp_path.iterdir())


def test_the_vendored_selection_keys_match_lightlys_models():
    from lightly.openapi_generated.swagger_client import models

    from bpsrun.selection.schema import KEYS

    for part, model in {"config": "SelectionConfigV4", "entry": "SelectionConfigV4Entry",
                        "input": "SelectionConfigV4EntryInput", "strategy": "SelectionConfigV4EntryStrategy"}.items():  # fmt: skip
        assert KEYS[part] == set(getattr(models, model).__fields__), part


def test_without_lightly_api_configs_are_still_checked(monkeypatch):
    from bpsrun.selection.config import validate

    for module in ("lightly.api", "lightly.api.api_workflow_compute_worker"):  # as after lightly 1.6
        monkeypatch.setitem(sys.modules, module, None)
    good = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]}
    validate(good, "conf/selection/x.yaml")
    typo = {"n_samples": 5, "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY",
                                                                                        "strenght": 2}}]}  # fmt: skip
    with pytest.raises(BpsrunError, match=r"x.yaml: strategies\[0\].strategy: unknown key\(s\) \['strenght'\]"):
        validate(typo, "conf/selection/x.yaml")
