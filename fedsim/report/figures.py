"""The report's figures, drawn from a :class:`~fedsim.report.model.FraudTypeSection`'s tables, labelled in the
report's language and returned as PNG bytes (embedded in the HTML as a data: URI and placed in the PDF).

Matplotlib's object API with the Agg canvas: no pyplot state, so figures drawn one after another (or in two
languages) never share axes. Tick labels use the language's number format (0,5 in Dutch).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from fedsim.report import format as fmt
from fedsim.report import i18n
from fedsim.report.format import Lang
from synthetic.schema import PHASES

SIZE = (6.4, 3.3)  # inches; at DPI 110 a figure fits the PDF's text width and an HTML column
DPI = 110
# the world's phases of the criminal journey, framed by "before it started" and "never detected"
PHASE_ORDER = ("before_orientation", *PHASES, "undetected")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _new(size: tuple[float, float] = SIZE) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def value_formatter(metric: str, lang: Lang) -> Callable[[float], str]:
    """How values of ``metric`` read on an axis: shares as per cent, euros with the scale word, scores plain."""
    kind = i18n.metric_kind(metric)
    if kind == "share":
        return lambda v: fmt.percent(v, lang, 0)
    if kind == "eur":
        return lambda v: fmt.euros(v, lang)
    return lambda v: fmt.number(v, lang, 2)


def _axis(ax: Axes, which: str, formatter: Callable[[float], str]) -> None:
    getattr(ax, f"{which}axis").set_major_formatter(FuncFormatter(lambda v, _pos: formatter(v)))


def _legend(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=8)


def ed_curve(table: pd.DataFrame, lang: Lang) -> bytes:
    """ED(h) per regime against the horizon h (hours before the money left) with the 95% CI band: the share of
    cases whose first alert came at least h hours before the first money-out (evaluation.md, early detection)."""
    fig, ax = _new()
    for regime, rows in table.groupby("regime", sort=False):
        rows = rows.sort_values("horizon_h")
        line = ax.plot(rows["horizon_h"], rows["estimate"], marker="o", label=i18n.regime_label(str(regime), lang))
        # A share lies in [0, 1]; a band end outside it (normal-approximation CI) is drawn at the bound.
        lo, hi = rows["lo"].clip(0, 1), rows["hi"].clip(0, 1)
        ax.fill_between(rows["horizon_h"], lo, hi, alpha=0.2, color=line[0].get_color())
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel(i18n.t("ax_hours_before", lang))
    ax.set_ylabel(i18n.t("ax_share_detected", lang))
    _axis(ax, "y", lambda v: fmt.percent(v, lang, 0))
    _axis(ax, "x", lambda v: fmt.number(v, lang))
    _legend(ax)
    return _png(fig)


def lead_times(table: pd.DataFrame, lang: Lang) -> bytes:
    """Distribution of lead times (hours from the first alert to the first money-out) of detected cases, per
    regime, as step histograms on shared bins."""
    fig, ax = _new()
    values = table["lead_time_h"].to_numpy(dtype=float)
    edges = list(np.histogram_bin_edges(values[np.isfinite(values)], bins=20))
    for regime, rows in table.groupby("regime", sort=False):
        ax.hist(
            rows["lead_time_h"], bins=edges, histtype="step", linewidth=1.5, label=i18n.regime_label(str(regime), lang)
        )
    ax.set_xlabel(i18n.t("ax_lead_hours", lang))
    ax.set_ylabel(i18n.t("ax_cases", lang))
    _axis(ax, "x", lambda v: fmt.number(v, lang))
    _axis(ax, "y", lambda v: fmt.number(v, lang))
    _legend(ax)
    return _png(fig)


def phase_bars(table: pd.DataFrame, lang: Lang) -> bytes:
    """Share of cases first detected in each phase of the criminal journey, grouped bars per regime."""
    fig, ax = _new()
    present = set(table["phase"])
    phases = [p for p in PHASE_ORDER if p in present] + sorted(present - set(PHASE_ORDER))
    regimes = list(dict.fromkeys(table["regime"]))
    width = 0.8 / max(len(regimes), 1)
    x = np.arange(len(phases))
    for i, regime in enumerate(regimes):
        shares = table[table["regime"] == regime].set_index("phase")["share"].reindex(phases).fillna(0.0)
        ax.bar(x + (i - (len(regimes) - 1) / 2) * width, shares, width, label=i18n.regime_label(regime, lang))
    ax.set_xticks(x, [i18n.phase(p, lang) for p in phases], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(i18n.t("ax_share_cases", lang))
    _axis(ax, "y", lambda v: fmt.percent(v, lang, 0))
    _legend(ax)
    return _png(fig)


def _step_labels(coalitions: list[str], lang: Lang) -> list[str]:
    """The first coalition in words, then "+ partner" for each partner a step adds."""
    labels, before = [], set[str]()
    for coalition in coalitions:
        members = [m for m in coalition.split("+") if m]
        added = [m for m in members if m not in before] if before else members
        labels.append(("+ " if before else "") + i18n.coalition(added or members, lang))
        before = set(members)
    return labels


def waterfall(table: pd.DataFrame, lang: Lang, metric: str) -> bytes:
    """From the best silo to the full chain, in the table's row order: the first bar is the best single
    partner's value, each next bar floats from the previous value by the gain of adding one partner; whiskers are
    each coalition's 95% CI."""
    fig, ax = _new()
    rows = table.reset_index(drop=True)
    values = rows["value"].to_numpy(dtype=float)
    bottoms = np.concatenate([[0.0], values[:-1]])
    heights = values - bottoms
    colours = ["#4c72b0"] + ["#55a868" if h >= 0 else "#c44e52" for h in heights[1:]]
    x = np.arange(len(rows))
    ax.bar(x, heights, bottom=bottoms, color=colours)
    errors = np.vstack([values - rows["lo"].to_numpy(dtype=float), rows["hi"].to_numpy(dtype=float) - values])
    ax.errorbar(x, values, yerr=np.clip(errors, 0, None), fmt="none", ecolor="black", capsize=3, linewidth=1)
    ax.set_xticks(x, _step_labels([str(c) for c in rows["coalition"]], lang), fontsize=8)
    ax.set_ylabel(i18n.metric_axis(metric, lang))
    _axis(ax, "y", value_formatter(metric, lang))
    return _png(fig)


def heatmap(table: pd.DataFrame, lang: Lang, metric: str) -> bytes:
    """The outcome v(S) of every coalition (rows) under every regime (columns), annotated with its value."""
    grid = table.pivot_table(index="coalition", columns="regime", values="value", aggfunc="mean", sort=False)
    height = max(2.4, 0.32 * len(grid) + 1.2)
    fig, ax = _new((SIZE[0], height))
    ax.grid(False)
    image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax, format=FuncFormatter(lambda v, _pos: value_formatter(metric, lang)(v)))
    ax.set_xticks(range(grid.shape[1]), [i18n.regime_label(str(r), lang) for r in grid.columns], fontsize=8)
    ax.set_yticks(range(grid.shape[0]), [i18n.coalition(str(c), lang) for c in grid.index], fontsize=7)
    text = value_formatter(metric, lang)
    middle = np.nanmean(grid.to_numpy(dtype=float))
    for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
        if math.isfinite(v):
            ax.text(j, i, text(v), ha="center", va="center", fontsize=6, color="white" if v < middle else "black")
    ax.set_xlabel(i18n.t("ax_form", lang))
    ax.set_ylabel(i18n.t("ax_coalition", lang))
    return _png(fig)


def privacy_utility(table: pd.DataFrame, lang: Lang, metric: str) -> bytes:
    """The primary metric against ε per person (all models composed) per (regime, coalition), with 95% CI
    whiskers. ε on a log axis; runs without DP (ε = ∞) sit at a separate point to the right, marked ∞."""
    fig, ax = _new((SIZE[0], SIZE[1] + 0.9))
    eps = table["epsilon"].astype(float)
    finite = eps[np.isfinite(eps)]
    infinity = float(finite.max()) * 3 if not finite.empty else 1.0
    for (regime, coal), rows in table.groupby(["regime", "coalition"], sort=False):
        x = [float(e) if math.isfinite(float(e)) else infinity for e in rows["epsilon"]]
        rows = rows.assign(x=x).sort_values("x")
        errors = np.vstack([rows["estimate"] - rows["lo"], rows["hi"] - rows["estimate"]]).clip(0, None)
        label = f"{i18n.regime_label(str(regime), lang)}: {i18n.coalition(str(coal), lang)}"
        ax.errorbar(rows["x"], rows["estimate"], yerr=errors, marker="o", capsize=3, label=label, alpha=0.85)
    ax.set_xscale("log")
    ticks = sorted({*(round(float(e), 1) for e in finite)})
    ax.set_xticks([*ticks, infinity], [*(fmt.number(e, lang, 1) for e in ticks), "∞"], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel(i18n.t("ax_epsilon", lang))
    ax.set_ylabel(i18n.metric_axis(metric, lang))
    _axis(ax, "y", value_formatter(metric, lang))
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside lower center", ncols=2, frameon=False, fontsize=7)
    return _png(fig)
