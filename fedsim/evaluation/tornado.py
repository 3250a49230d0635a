"""The tornado chart of a one-at-a-time sensitivity sweep (Saltelli et al., *Global Sensitivity Analysis: The
Primer*, Wiley 2008, §1.2; Howard, "Decision analysis: practice and promise", Management Science 34(6), 1988).

One horizontal bar per knob, from the primary contrast with the knob at its low value to the contrast at its high
value, drawn around a vertical line at the base contrast; the knobs are sorted by swing |high − low|, the
largest at the top. Each end carries its 95% CI as a whisker. A knob whose low or high value changes the sign of
the contrast or its significance is hatched and labelled.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

FLIP_COLOUR = "#c0392b"
BAR_COLOUR = "#5b8db8"


def tornado_figure(swings: pd.DataFrame, *, base: tuple[float, float, float], title: str, xlabel: str) -> Figure:
    """The tornado of ``swings`` (rows of :func:`fedsim.sensitivity.swings`, largest swing first); ``base`` is the
    base contrast and its CI (diff, lo, hi). The largest swing is the top bar."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib.figure import Figure

    n = len(swings)
    fig = Figure(figsize=(10.5, 1.8 + 0.8 * n))
    ax = fig.add_subplot()
    ys = list(range(n))[::-1]  # first row (largest swing) at the top
    diff, lo, hi = base
    ax.axvspan(lo, hi, color="0.9", zorder=0, label="base 95% CI")
    ax.axvline(diff, color="0.2", lw=1.2, zorder=1, label=f"base {diff:+.3g}")
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--", zorder=1)
    for y, (_, r) in zip(ys, swings.iterrows(), strict=True):
        left, right = sorted((r["at_low"], r["at_high"]))
        ax.barh(
            y,
            right - left,
            left=left,
            height=0.5,
            color=BAR_COLOUR,
            edgecolor=FLIP_COLOUR if r["flips"] else "0.3",
            hatch="//" if r["flips"] else None,
            zorder=2,
        )
        for end, dy, marker, face in (("low", -0.14, "o", "white"), ("high", 0.14, "s", "0.15")):
            # low below the bar's centre line, high above it, so the two CIs never hide each other
            x, x_lo, x_hi = r[f"at_{end}"], r[f"at_{end}_lo"], r[f"at_{end}_hi"]
            ax.errorbar(
                x, y + dy, xerr=[[x - x_lo], [x_hi - x]], fmt=marker, mfc=face, color="0.15", ms=5, capsize=3, zorder=3
            )
            ax.annotate(
                f"{end} {r[f'value_{end}']:g}",
                (x, y + dy),
                xytext=(0, 8 if dy > 0 else -12),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
        if r["flips"]:
            ax.annotate(
                r["change"],
                (max(r["at_low_hi"], r["at_high_hi"]), y),
                xytext=(6, -3),
                textcoords="offset points",
                color=FLIP_COLOUR,
                fontsize=7,
            )
    ax.set_yticks(ys, [str(k) for k in swings["knob"]])
    ax.set_ylim(-0.8, n - 0.2)
    ax.set_xlabel(xlabel)
    ax.set_title(textwrap.fill(title, 95), fontsize=9)
    ax.errorbar([], [], xerr=[], fmt="o", mfc="white", color="0.15", label="knob low [95% CI]")
    ax.errorbar([], [], xerr=[], fmt="s", color="0.15", label="knob high [95% CI]")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    if swings["flips"].any():  # room on the right for the flip labels
        left, right = ax.get_xlim()
        ax.set_xlim(left, right + 0.35 * (right - left))
    fig.tight_layout()
    return fig


def save_tornado(fig: Figure, out: Path, stem: str = "tornado") -> list[Path]:
    """Write the figure as PNG and SVG into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    for path in paths:
        fig.savefig(path, dpi=150)
    return paths
