"""ActiveLab (Goh and Mueller, arXiv:2301.11856): re-label a doubtful image or label a new one, on one scale.

cleanlab scores labeled images (from their annotations and the model) and unlabeled ones (from the model) so that
the lowest score is the most useful next annotation, whichever kind it is.
"""

from __future__ import annotations

import numpy as np
from cleanlab.multiannotator import get_active_learning_scores

from bpsrun.errors import BpsrunError


def activelab_scores(probs: np.ndarray, annotations: np.ndarray) -> np.ndarray:
    """One score per candidate (lower: annotate first). `annotations` is candidates x annotators of class
    indices, NaN where that annotator gave none; an all-NaN row is an unlabeled candidate (some row is labeled:
    ActiveLab runs from round 2)."""
    labeled = ~np.isnan(annotations).all(axis=1)
    scores = np.empty(len(probs))
    used = ~np.isnan(annotations[labeled]).all(axis=0)  # cleanlab refuses an annotator with no label
    scores[labeled], unlabeled_scores = get_active_learning_scores(
        annotations[labeled][:, used], probs[labeled], probs[~labeled] if (~labeled).any() else None
    )
    if (~labeled).any():
        scores[~labeled] = unlabeled_scores
    return scores


def activelab(probs: np.ndarray, annotations: np.ndarray, n: int, max_annotations: int | None) -> list[int]:
    """The `n` candidates with the lowest ActiveLab scores (ties in candidate order), leaving out images that
    already have `max_annotations` annotations (None: as many as there are annotators, the columns)."""
    limit = annotations.shape[1] if max_annotations is None else max_annotations
    count = (~np.isnan(annotations)).sum(axis=1)
    eligible = np.flatnonzero(count < limit)
    if len(eligible) < n:
        raise BpsrunError(
            f"ACTIVELAB: {len(eligible)} images can take another annotation (each has at most {limit}), fewer "
            f"than the round's {n}; lower selection.n_samples or raise the strategy's max_annotations"
        )
    scores = activelab_scores(probs, annotations)[eligible]
    return [int(i) for i in eligible[np.argsort(scores, kind="stable")[:n]]]
