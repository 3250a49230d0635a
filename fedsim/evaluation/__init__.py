"""Case-level early-detection metrics with cluster-bootstrap CIs (design: evaluation.md §2–§3).

Entry points: :func:`evaluate` (one score table) and :func:`compare` (two score tables, paired).
"""

from fedsim.evaluation.api import ComparisonResult, EvaluationResult, compare, evaluate
from fedsim.evaluation.inputs import EvaluationSettings, Truth
from fedsim.evaluation.tables import flatten_comparison, flatten_metrics, lookup, metric_name

__all__ = [
    "ComparisonResult",
    "EvaluationResult",
    "EvaluationSettings",
    "Truth",
    "compare",
    "evaluate",
    "flatten_comparison",
    "flatten_metrics",
    "lookup",
    "metric_name",
]
