"""``describe_world``: the first things a researcher looks at in a world, as one JSON-serialisable dict.

Rows per table; for realistic worlds the fraud-type table and the calibration (:mod:`synthetic.calibration`)
and, optionally, the leak screen (:mod:`synthetic.leak_screen`); for known-answer worlds the closed-form
best AUCs (:mod:`synthetic.known_answer`). ``fedsim world describe`` prints it (``fedsim.world_describe``).
"""

from __future__ import annotations

from typing import Any

from synthetic.calibration import calibration_table, fraud_type_table
from synthetic.known_answer import coalition_optimal_auc, partner_shifts
from synthetic.leak_screen import leak_screen
from synthetic.stats import jsonable
from synthetic.world_data import World


def describe_world(world: World, screen: bool = True) -> dict[str, Any]:
    """Everything a researcher wants to see first about a world, as a JSON-serialisable dict.

    Keys: ``summary``, ``rows`` (partner → table → rows; ``truth`` → table → rows), and for realistic worlds
    ``fraud_types`` (one row per type), ``calibration`` (see :func:`calibration_table`) and, if ``screen``,
    ``leak_screen`` (see :func:`leak_screen`); for known-answer worlds ``known_answer`` (closed-form AUCs).
    """
    desc: dict[str, Any] = {"summary": _summary(world), "rows": _rows(world)}
    if world.config.mode == "known_answer":
        desc["known_answer"] = _known_answer(world)
        return jsonable(desc)
    desc["fraud_types"] = fraud_type_table(world)
    desc["calibration"] = calibration_table(world)
    desc["calibration_ok"] = all(r["ok"] for r in desc["calibration"] if r["ok"] is not None)
    if screen:
        desc["leak_screen"] = leak_screen(world)
    return jsonable(desc)


def _summary(world: World) -> dict[str, Any]:
    cfg = world.config
    out: dict[str, Any] = {
        "mode": cfg.mode,
        "seed": world.seed,
        "content_hash": world.content_hash,
        "partners": {n: p.kind for n, p in world.partners.items()},
    }
    if cfg.mode == "known_answer":
        out.update(persons=cfg.known_answer.entities, days=cfg.known_answer.days)
    else:
        out.update(
            persons=cfg.population.persons,
            days=cfg.population.days,
            start_date=cfg.population.start_date,
            multipliers={ft: c.multiplier for ft, c in cfg.fraud.items()},
            barriers=[b.model_dump(mode="json") for b in cfg.barriers],
        )
    return out


def _rows(world: World) -> dict[str, dict[str, int]]:
    rows = {p: {t: tbl.num_rows for t, tbl in pv.tables.items()} for p, pv in world.partners.items()}
    rows["truth"] = {t: tbl.num_rows for t, tbl in world.truth.items()}
    return rows


def _known_answer(world: World) -> dict[str, Any]:
    shifts = partner_shifts(world.config)
    per_partner = [
        {"partner": p, "shift": d, "optimal_auc": coalition_optimal_auc(world.config, [p])} for p, d in shifts.items()
    ]
    return {
        "cases": world.truth["cases"].num_rows,
        "prevalence": world.config.known_answer.prevalence,
        "partners": per_partner,
        "all_partners_optimal_auc": coalition_optimal_auc(world.config, list(shifts)),
        "formula": "Φ(√(Σ d_p²)/√2) per person group; grouped over banks (synthetic.known_answer)",
    }
