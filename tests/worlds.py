"""How a test builds a world: the experiment-spec path ``fedsim run`` takes, and the specs of the shared worlds.

tests/conftest.py turns the shared specs into session fixtures; a module that needs a world of its own calls
:func:`build_workspace` with its own spec instead of repeating the builder. The heavy imports sit inside the
builder so that importing this module (conftest does, for every test) does not load torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedsim.experiment import ExperimentSpec
    from fedsim.runner import Workspace

# ~1k entities, as issue 8's regime conformance test asks: three banks (d = 1 each) splitting the people, a telco
# (d = 0.8), a marketplace (d = 0.5) and a placebo partner (d = 0) holding everyone; 10% of people are cases.
KNOWN_ANSWER_WORLD: dict[str, Any] = {
    "preset": "known-answer",
    "seed": 3,
    "overrides": {"known_answer": {"entities": 1000, "days": 20, "prevalence": 0.1}},
}
KNOWN_ANSWER_SPLIT = {"train_days": 12, "gap_days": 0, "test_days": 8}

# The realistic generator at test size: noisy keys and partial coverage (a telco holds ~40% of a bank's people).
SMALL_REALISTIC_WORLD: dict[str, Any] = {"preset": "small", "seed": 2, "overrides": {"persons": 1500, "days": 90}}
SMALL_REALISTIC_SPLIT = {"train_days": 50, "gap_days": 5, "test_days": 20}

# The known-answer preset at 16k persons over 16 days: large enough that a test-set AUC lands within ~0.02 of its
# population value, so measured sharing can be held to the closed form (world.md §7).
CLOSED_FORM_WORLD: dict[str, Any] = {"preset": "known-answer", "seed": 3, "overrides": {"persons": 16000, "days": 16}}
CLOSED_FORM_SPLIT = {"train_days": 8, "gap_days": 0, "test_days": 8}


def build_workspace(
    world: dict[str, Any], split: dict[str, int], artifacts_dir: Path, *, name: str = "test-world"
) -> Workspace:
    """Generate ``world`` and build the workspace every regime runs on (features, truth, split), through the
    experiment spec; ``name`` is the experiment's name."""
    from fedsim.experiment import parse_experiment

    spec = parse_experiment(
        {
            "name": name,
            "world": world,
            "split": split,
            "regimes": ["pooled"],
            "coalitions": "all",
            "models": ["logistic"],
            "seeds": [0],
        }
    )
    return workspace_for(spec, artifacts_dir)


def workspace_for(spec: ExperimentSpec, artifacts_dir: Path) -> Workspace:
    """The workspace of a whole experiment spec (``ws.spec`` is ``spec``, for tests that expand its grid)."""
    from fedsim.runner import Workspace
    from synthetic.world import generate

    return Workspace.build(spec, generate(spec.world.world_config(), spec.world.seed), artifacts_dir)
