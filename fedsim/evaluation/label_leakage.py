"""Label leakage of split learning: label-free attacks on the gradients a party receives.

The party without labels receives ∂loss/∂(its embedding) per
example. For a logistic/BCE top the gradient is (p − y)·∂z/∂e, so positives and negatives point in
opposite directions and — rare positives being badly predicted — positives have larger norms (Li,
Sun, Wang, Yang, Zhang & Zhu 2022, "Label leakage and protection in two-party split learning", ICLR:
the norm and the direction/cosine attacks). :func:`label_leakage_scores` implements both without any
label; :func:`label_leakage_report` scores them against the true labels (ROC-AUC; 0.5 = no leak). Every
vertical and hybrid run applies them to each gradient block a party receives
(:func:`fedsim.federation.vertical.node.record_leakage`) and logs ``label_leak_<attack>_auc.<party>``
(:func:`fedsim.regimes.vertical.label_leakage_metrics`).
"""

from __future__ import annotations

import numpy as np


def label_leakage_scores(gradients: np.ndarray) -> dict[str, np.ndarray]:
    """Two label-free attacks on the captured embedding gradients ``(n, k)``; a score per example.

    Higher scores mean "more likely positive".

    * ``norm``: ‖g‖₂ (Li et al. 2022, norm attack — rare positives get large gradients);
    * ``direction``: cosine of g with the leading right singular vector of the (uncentred) gradient
      matrix, oriented so the smaller side is positive (fraud is the minority class); Li et al. 2022's
      cosine attack without needing one known positive.
    """
    g = np.asarray(gradients, dtype=float)
    if g.ndim != 2 or g.shape[0] < 2:
        raise ValueError(f"gradients: shape {g.shape}; allowed: (n >= 2 examples, k embedding dims)")
    norms = np.linalg.norm(g, axis=1)
    _, _, vt = np.linalg.svd(g, full_matrices=False)
    cosine = (g @ vt[0]) / np.where(norms > 0, norms, 1.0)
    if (cosine > 0).sum() > (cosine < 0).sum():  # orient: the minority side is "positive"
        cosine = -cosine
    return {"norm": norms, "direction": cosine}


def label_leakage_report(gradients: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ROC-AUC of each attack of :func:`label_leakage_scores` against the true 0/1 labels (0.5 = no leak)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels).astype(int).reshape(-1)
    if y.shape[0] != np.asarray(gradients).shape[0] or np.unique(y).size != 2:
        raise ValueError(
            f"labels: shape {y.shape}, classes {np.unique(y)}; allowed: one 0/1 label per "
            "gradient row, both classes present"
        )
    scores = label_leakage_scores(gradients)
    out = {f"auc_{name}": float(roc_auc_score(y, s)) for name, s in scores.items()}
    out.update(n=float(y.size), positives=float(y.sum()))
    return out
