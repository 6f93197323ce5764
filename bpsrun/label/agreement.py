"""Agreement between annotators in one round, over the images two or more of them labeled.

`agreement/kappa` is Cohen's kappa when exactly two annotators share images, Fleiss' kappa when more do (chance-
corrected: 1 = always agree, 0 = agree as often as chance). `agreement/<annotator>` is the share of that
annotator's votes on those images that equal the consensus label.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torchmetrics.functional.classification import multiclass_cohen_kappa
from torchmetrics.functional.nominal import fleiss_kappa

from bpsrun.label.consensus import votes

log = logging.getLogger("bpsrun")

LOW_KAPPA = 0.4  # below "moderate" agreement on Landis and Koch's scale


def kappa(shared: dict[str, dict[str, str]], classes: list[str]) -> float:
    annotators = sorted({a for by in shared.values() for a in by})
    if len(annotators) == 2:
        a, b = annotators
        pairs = [(by[a], by[b]) for by in shared.values()]
        first = torch.tensor([classes.index(x) for x, _ in pairs])
        second = torch.tensor([classes.index(y) for _, y in pairs])
        return float(multiclass_cohen_kappa(first, second, num_classes=len(classes)))
    counts = torch.zeros(len(shared), len(classes), dtype=torch.long)
    for i, by in enumerate(shared.values()):
        for label in by.values():
            counts[i, classes.index(label)] += 1
    return float(fleiss_kappa(counts, mode="counts"))


def agreement_metrics(
    records: list[dict[str, Any]], consensus: dict[str, str], classes: list[str], round_: int
) -> dict[str, float]:
    """agreement/* metrics of a round's records (none when no image has two annotators); warns on low kappa."""
    shared = {f: by for f, by in votes(records).items() if len(by) >= 2}
    if not shared:
        return {}
    metrics = {"agreement/images": float(len(shared)), "agreement/kappa": kappa(shared, classes)}
    for annotator in sorted({a for by in shared.values() for a in by}):
        mine = [(f, by[annotator]) for f, by in shared.items() if annotator in by]
        metrics[f"agreement/{annotator}"] = sum(label == consensus[f] for f, label in mine) / len(mine)
    if metrics["agreement/kappa"] < LOW_KAPPA:
        log.warning(
            "round %d: annotators agree little (kappa %.2f on %d images, below %.1f); check the labeling guide",
            round_,
            metrics["agreement/kappa"],
            len(shared),
            LOW_KAPPA,
        )
    return metrics
