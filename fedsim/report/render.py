"""From a :class:`~fedsim.report.model.ReportModel` to the report's words: one :class:`Document` per language, then a
self-contained HTML page (this module) and a PDF (:mod:`fedsim.report.pdf`) from that same document.

Adds words and formatting, never numbers: every figure printed here is a field of the model. A contrast whose
95% CI includes zero is worded "no measurable difference", never as a gain (evaluation.md §7: each figure as a
range). The HTML embeds its figures as data: URIs and its CSS inline, and references nothing outside itself.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from fedsim.privacy import NO_PRACTICAL_BOUND_ODDS
from fedsim.report import figures, i18n
from fedsim.report import format as fmt
from fedsim.report.document import Block, Bullets, Document, Figure, Paragraph, Section, Table
from fedsim.report.format import Lang
from fedsim.report.i18n import t
from fedsim.report.model import FraudTypeSection, PageOne, Range, ReportModel, RunProblem, Traced

TEMPLATES = Path(__file__).parent / "templates"


# --- numbers with their unit and range --------------------------------------------------------------------------


def value(x: float, unit: str, lang: Lang, *, signed: bool = False, scale: float | None = None) -> str:
    """One number in its unit: cases, a share (per cent), euros, odds (×), ε, days or hours. scale: for cases,
    the magnitude that sets the decimals (the largest end of a range, so both ends read alike)."""
    if unit == "cases":
        return fmt.count(x, lang, signed=signed, scale=scale)
    if unit == "share":
        return fmt.percent(x, lang, signed=signed)
    if unit == "eur":
        return fmt.euros(x, lang, signed=signed)
    if unit == "odds":
        return fmt.odds(x, lang)
    if unit == "epsilon":
        return fmt.epsilon(x, lang)
    return fmt.number(x, lang, 0 if unit == "days" else 1, signed=signed)


def range_words(r: Range, unit: str, lang: Lang, *, signed: bool = True) -> str:
    """ "range lo to hi" / "bandbreedte lo tot hi"."""
    scale = max(abs(r.lo), abs(r.hi))
    lo, hi = (value(x, unit, lang, signed=signed, scale=scale) for x in (r.lo, r.hi))
    return t("range", lang, lo=lo, hi=hi)


def metric_cell(est: float, lo: float, hi: float, metric: str, lang: Lang, *, signed: bool = False) -> str:
    """A table cell "estimate [lo, hi]" in the metric's unit (Dutch separates the ends with ";")."""
    unit = {"share": "share", "eur": "eur"}.get(i18n.metric_kind(metric), "score")
    if unit == "score":
        one = lambda x: fmt.number(x, lang, 3, signed=signed)  # noqa: E731
    else:
        one = lambda x: value(x, unit, lang, signed=signed)  # noqa: E731
    sep = "; " if lang == "nl" else ", "
    return f"{one(est)} [{one(lo)}{sep}{one(hi)}]"


def _direction(r: Range) -> str:
    if not r.significant:
        return "none"
    return "gain" if r.estimate > 0 else "loss"


# --- page one ---------------------------------------------------------------------------------------------------


def _problem_line(problem: RunProblem, lang: Lang) -> str:
    words = t(f"problem_{problem.kind}", lang)
    detail = f" ({problem.detail})" if problem.detail else ""
    run = f", run {problem.run_id}" if problem.run_id else ""
    return f"{problem.cell} — {words}{detail}{run}"


def _problems(page: PageOne, n_runs: int, lang: Lang) -> list[Block]:
    if not page.problems:
        return [Paragraph(t("no_problems", lang, n=n_runs), "note")]
    return [
        Paragraph(t("problems_intro", lang, n=len(page.problems)), "warning"),
        Bullets(tuple(_problem_line(p, lang) for p in page.problems)),
    ]


def _cases_sentence(page: PageOne, lang: Lang) -> str:
    cases, share = page.extra_cases.value, page.extra_share.value
    a, b = i18n.regime(page.contrast[0], lang), i18n.regime(page.contrast[1], lang)
    direction = _direction(cases)
    if direction == "none":
        return t(
            "cases_none", lang, a=a, b=b,
            lo=value(cases.lo, "cases", lang, signed=True, scale=max(abs(cases.lo), abs(cases.hi))),
            hi=value(cases.hi, "cases", lang, signed=True, scale=max(abs(cases.lo), abs(cases.hi))),
            slo=fmt.percent(share.lo, lang, signed=True), shi=fmt.percent(share.hi, lang, signed=True),
        )  # fmt: skip
    return t(
        f"cases_{direction}", lang, a=a, b=b,
        n=fmt.count(abs(cases.estimate), lang), rng=range_words(cases, "cases", lang),
        share=fmt.percent(abs(share.estimate), lang), srng=range_words(share, "share", lang),
    )  # fmt: skip


def _euro_sentence(traced: Traced, key: str, lang: Lang, **extra: object) -> str:
    r = traced.value
    direction = _direction(r)
    lo, hi = fmt.euros(r.lo, lang, signed=True), fmt.euros(r.hi, lang, signed=True)
    if direction == "none":
        return t(f"{key}_none", lang, lo=lo, hi=hi, **extra)
    return t(f"{key}_{direction}", lang, v=fmt.euros(abs(r.estimate), lang), rng=range_words(r, "eur", lang), **extra)


def _assumptions(page: PageOne, lang: Lang) -> Bullets:
    """The extrapolation's method, then each assumption (key → value) in words; multipliers as ×k."""
    items = [t("eur_nl_method", lang)]
    for key, number in page.nl_assumptions.items():
        decimals = 0 if abs(number) >= 100 or float(number).is_integer() else 2
        shown = fmt.number(number, lang, decimals)
        items.append(f"{i18n.assumption(key, lang)}: {'×' + shown if key.startswith('multiplier.') else shown}")
    return Bullets(tuple(items))


def _privacy_sentence(page: PageOne, lang: Lang) -> str:
    if page.privacy_odds is None or page.epsilon_person is None:
        return t("privacy_none", lang)
    odds = page.privacy_odds.value
    if odds.estimate >= NO_PRACTICAL_BOUND_ODDS:  # worded, not a number nobody can take in (fedsim.privacy)
        return t("privacy_cost_no_practical_bound", lang, eps=fmt.epsilon(page.epsilon_person.value.estimate, lang))
    same = fmt.odds(odds.lo, lang) == fmt.odds(odds.hi, lang)  # seeds that agree to the shown precision
    spread = "" if same else "; " + range_words(odds, "odds", lang, signed=False)
    return t(
        "privacy_cost", lang,
        eps=fmt.epsilon(page.epsilon_person.value.estimate, lang), odds=fmt.odds(odds.estimate, lang), rng=spread,
    )  # fmt: skip


def page_one(model: ReportModel, lang: Lang) -> Section:
    """Page one in plain words: missing runs first, then cases caught, euros, the Netherlands, privacy."""
    page = model.page_one
    blocks: list[Block] = [Paragraph(t("synthetic_warning", lang), "warning")]
    blocks += _problems(page, len(model.methods.run_ids), lang)
    a, b = (i18n.regime(r, lang) for r in page.contrast)
    blocks.append(Paragraph(t("scope", lang, a=a, b=b, fraud_type=i18n.fraud_type(page.fraud_type, lang))))
    blocks.append(Paragraph(_cases_sentence(page, lang), "note"))
    days = model.limitations.test_window_days
    blocks.append(Paragraph(_euro_sentence(page.euros_world, "eur_world", lang, days=days)))
    blocks.append(Paragraph(_euro_sentence(page.euros_nl, "eur_nl", lang)))
    blocks.append(_assumptions(page, lang))
    blocks.append(Paragraph(_privacy_sentence(page, lang), "note"))
    blocks.append(Paragraph(t("ranges_explained", lang)))
    return Section(t("s_page_one", lang), 1, blocks)


# --- per fraud type ---------------------------------------------------------------------------------------------


def _partner_values(sec: FraudTypeSection, lang: Lang) -> list[Block]:
    blocks: list[Block] = []
    if sec.best_coalition is not None:
        near = sec.smallest_near_best or sec.best_coalition
        best_words = i18n.coalition(sec.best_coalition, lang)
        blocks.append(Paragraph(t("best_coalition", lang, best=best_words, near=i18n.coalition(near, lang)), "note"))
    for flag, key in ((sec.every_partner_gains, "every_partner_gains"), (sec.returns_diminish, "returns_diminish")):
        if flag is not None:
            blocks.append(Paragraph(t(f"{key}_{str(flag).lower()}", lang)))
    values = sec.partner_values
    if values.empty:
        return [*blocks, Paragraph(t("empty_partner_values", lang))]
    rows = tuple(
        (
            i18n.partner(str(r.partner), lang),
            *(metric_cell(r[c], r[f"{c}_lo"], r[f"{c}_hi"], sec.metric, lang) for c in ("shapley", "banzhaf", "loo")),
        )
        for _, r in values.iterrows()
    )
    header = tuple(t(k, lang) for k in ("h_partner", "h_shapley", "h_banzhaf", "h_loo"))
    return [*blocks, Table(header, rows, (False, True, True, True)), Paragraph(t("shapley_explained", lang))]


def _contrast_table(table: pd.DataFrame, metric: str, lang: Lang, *, steps: bool) -> Table:
    """sharing_forms (each form minus status quo, signed) or steps (each step's own value) as a table."""
    rows = []
    for _, r in table.iterrows():
        label = (t(f"step_{r['step']}", lang),) if steps else ()
        cell = metric_cell(r["estimate"], r["lo"], r["hi"], metric, lang, signed=not steps)
        rows.append((*label, i18n.regime_label(str(r["regime"]), lang), cell))
    keys = ("h_step", "h_form", "h_result") if steps else ("h_form", "h_difference")
    numeric = tuple(k in ("h_result", "h_difference") for k in keys)
    return Table(tuple(t(k, lang) for k in keys), tuple(rows), numeric)


def _table_or(table: pd.DataFrame, intro: str, render: Callable[[], Table], empty_key: str, lang: Lang) -> list[Block]:
    if table.empty:
        return [Paragraph(t(empty_key, lang))]
    return [Paragraph(intro), render()]


def _figure_or(table: pd.DataFrame, draw: Callable[[], bytes], caption: str, empty_key: str, lang: Lang) -> list[Block]:
    if table.empty:
        return [Paragraph(t(empty_key, lang))]
    return [Figure(draw(), caption)]


def _topics(sec: FraudTypeSection, lang: Lang) -> list[tuple[str, list[Block]]]:
    """(title key, blocks) of the nine topics of a fraud type, in reading order."""
    m, words = sec.metric, i18n.metric(sec.metric, lang)
    return [
        ("sub_coalition", _partner_values(sec, lang)),
        ("sub_sharing", _table_or(sec.sharing_forms, t("sharing_intro", lang, metric=words),
                                  lambda: _contrast_table(sec.sharing_forms, m, lang, steps=False),
                                  "empty_sharing_forms", lang)),
        ("sub_steps", _table_or(sec.steps, t("steps_intro", lang, metric=words),
                                lambda: _contrast_table(sec.steps, m, lang, steps=True), "empty_steps", lang)),
        ("sub_ed", _figure_or(sec.ed_curve, lambda: figures.ed_curve(sec.ed_curve, lang),
                              t("cap_ed", lang), "empty_case_alerts", lang)),
        ("sub_lead", _figure_or(sec.lead_times, lambda: figures.lead_times(sec.lead_times, lang),
                                t("cap_lead", lang), "empty_case_alerts", lang)),
        ("sub_phase", _figure_or(sec.phases, lambda: figures.phase_bars(sec.phases, lang),
                                 t("cap_phase", lang), "empty_case_alerts", lang)),
        ("sub_waterfall", _figure_or(sec.waterfall, lambda: figures.waterfall(sec.waterfall, lang, m),
                                     t("cap_waterfall", lang, metric=words), "empty_lattice", lang)),
        ("sub_heatmap", _figure_or(sec.heatmap, lambda: figures.heatmap(sec.heatmap, lang, m),
                                   t("cap_heatmap", lang, metric=words), "empty_lattice", lang)),
        ("sub_privacy", _figure_or(sec.privacy_utility, lambda: figures.privacy_utility(sec.privacy_utility, lang, m),
                                   t("cap_privacy", lang, metric=_capital(words)), "empty_privacy", lang)),
    ]  # fmt: skip


def fraud_type_sections(sec: FraudTypeSection, lang: Lang) -> list[Section]:
    """The fraud type's heading and its nine topics, each a figure or table, or a sentence saying what was not
    measured and what would measure it."""
    heading = Section(i18n.fraud_type(sec.fraud_type, lang, heading=True), 2)
    return [heading, *(Section(t(key, lang), 3, blocks) for key, blocks in _topics(sec, lang))]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- audit, methods, limitations, parameters --------------------------------------------------------------------


def audit_sections(model: ReportModel, lang: Lang) -> list[Section]:
    audit: list[Block] = [Paragraph(t("empty_audit", lang))]
    if not model.audit.empty:
        rows: tuple[tuple[str, ...], ...] = tuple(
            (
                str(r["check"]),
                i18n.regime_label(str(r["regime"]), lang),
                "∞" if r["epsilon"] == float("inf") else fmt.epsilon(float(r["epsilon"]), lang),
                fmt.number(float(r["statistic"]), lang, 3),
                fmt.number(float(r["bound"]), lang, 3),
                t("yes" if bool(r["passed"]) else "no", lang),
            )
            for _, r in model.audit.iterrows()
        )
        keys = ("h_check", "h_form", "h_epsilon", "h_statistic", "h_bound", "h_passed")
        header = tuple(t(k, lang) for k in keys)
        audit = [Paragraph(t("audit_intro", lang)), Table(header, rows, (False, False, True, True, True, False))]
    register: list[Block] = [Paragraph(t("empty_register", lang))]
    if not model.leakage_register.empty:
        cols = ("regime", "what_leaves", "protected_by", "residual_risk")
        rows = tuple(
            (i18n.regime_label(str(r["regime"]), lang), *(str(r[c]) for c in cols[1:]))
            for _, r in model.leakage_register.iterrows()
        )
        header = (t("h_form", lang), t("h_what_leaves", lang), t("h_protected_by", lang), t("h_residual_risk", lang))
        register = [Paragraph(t("register_intro", lang)), Table(header, rows)]
    return [
        Section(t("s_audit", lang), 1),
        Section(t("sub_audit", lang), 2, audit),
        Section(t("sub_register", lang), 2, register),
    ]


def _traced_items(page: PageOne, lang: Lang) -> tuple[str, ...]:
    fields = ("extra_cases", "extra_share", "euros_world", "euros_nl", "privacy_odds", "epsilon_person")
    items = []
    for name in fields:
        traced: Traced | None = getattr(page, name)
        if traced is not None:
            what = t(f"what_{name}", lang)
            items.append(t("m_how_item", lang, what=what, how=traced.how, n=len(traced.run_ids)))
    return tuple(items)


def methods_section(model: ReportModel, lang: Lang) -> Section:
    m = model.methods
    facts = (
        (t("m_experiment", lang), f"{m.experiment} — {m.description}".strip(" —")),
        (t("m_generated", lang), fmt.day(m.generated_at, lang)),
        (t("m_store", lang), m.tracking_uri),
        (t("m_world", lang), ", ".join(m.world_hashes) or "–"),
        (t("m_commit", lang), ", ".join(m.git_commits) or "–"),
        (t("m_config", lang), ", ".join(m.config_hashes) or "–"),
        (t("m_seeds", lang), ", ".join(str(s) for s in m.seeds) or "–"),
    )
    runs = tuple((name, run_id) for name, run_id in sorted(m.run_ids.items()))
    blocks: list[Block] = [
        Bullets(tuple(f"{k}: {v}" for k, v in facts)),
        Paragraph(t("m_how", lang)),
        Bullets(_traced_items(model.page_one, lang)),
        Table((t("h_run_name", lang), t("h_run_id", lang)), runs),
    ]
    return Section(t("s_methods", lang), 1, blocks)


def limitations_section(model: ReportModel, lang: Lang) -> Section:
    lim = model.limitations
    persons, days = fmt.number(lim.world_persons, lang), fmt.number(lim.world_days, lang)
    multipliers = tuple(
        f"{i18n.fraud_type(ft, lang)}: ×{fmt.number(k, lang, 0 if k >= 10 else 1)}"
        for ft, k in lim.prevalence_multipliers.items()
    )
    blocks: list[Block] = [
        Paragraph(t("lim_synthetic", lang, persons=persons, days=days)),
        Paragraph(t("lim_prevalence", lang)),
        Bullets(multipliers),
        Paragraph(t("lim_window", lang, train=lim.train_window_days, test=lim.test_window_days)),
        Paragraph(t("lim_eps_covers", lang)),
        Bullets(tuple(i18n.epsilon_scope(k, lang) for k in lim.epsilon_covers)),
        Paragraph(t("lim_eps_not", lang)),
        Bullets(tuple(i18n.epsilon_scope(k, lang) for k in lim.epsilon_does_not_cover)),
    ]
    return Section(t("s_limitations", lang), 1, blocks)


def parameters_section(model: ReportModel, lang: Lang) -> Section:
    rows = tuple((k, str(v)) for k, v in sorted(model.parameters.items()))
    table = Table((t("h_parameter", lang), t("h_value", lang)), rows)
    return Section(t("s_parameters", lang), 1, [Paragraph(t("parameters_intro", lang)), table])


# --- the document and the HTML page -----------------------------------------------------------------------------


def build_document(model: ReportModel, lang: Lang) -> Document:
    """The whole report in ``lang``: page one, each fraud type, audit, methods, limitations, parameters."""
    lang = fmt.check_lang(lang)
    sections = [page_one(model, lang)]
    first_metric = model.sections[0].metric if model.sections else ""
    intro: list[Block] = (
        [Paragraph(t("fraud_types_intro", lang, metric=i18n.metric(first_metric, lang)))] if first_metric else []
    )
    sections.append(Section(t("s_fraud_types", lang), 1, intro))
    for sec in model.sections:
        sections += fraud_type_sections(sec, lang)
    sections += audit_sections(model, lang)
    sections += [methods_section(model, lang), limitations_section(model, lang), parameters_section(model, lang)]
    for i, section in enumerate(sections):
        section.anchor = f"s{i + 1}"
    subtitle = t("subtitle", lang, experiment=model.experiment, date=fmt.day(model.methods.generated_at, lang))
    return Document(lang=lang, title=t("title", lang), subtitle=subtitle, sections=sections)


def _kind(block: Block) -> str:
    return type(block).__name__.lower()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# A signed amount ("−€26,121", "+€ 1,2 mln"): browsers may break a line after the sign, so the HTML keeps it whole.
_AMOUNT = re.compile("[−+]?€\u00a0?[0-9.,]+(?:\u00a0(?:mln|mld)|M|bn)?|[−+][0-9.,]+%?")


def _keep_amounts(text: str) -> Markup:
    """``text`` escaped, with every signed amount in a no-wrap span."""
    return Markup(_AMOUNT.sub(lambda m: f'<span class="nw">{m.group(0)}</span>', str(escape(text))))


def render_html(doc: Document) -> str:
    """The document as one self-contained HTML page (CSS inline, figures as data: URIs, no script)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["kind"] = _kind
    env.filters["data_uri"] = _data_uri
    env.filters["amounts"] = _keep_amounts
    return env.get_template("report.html.j2").render(doc=doc)


def report_languages(choice: str) -> tuple[Lang, ...]:
    """The languages ``--lang`` asks for: "nl", "en" or "both" (Dutch first); anything else is refused, naming
    the value and the choices."""
    from fedsim.errors import FedsimError

    if choice == "both":
        return fmt.LANGS
    if choice not in fmt.LANGS:
        raise FedsimError(f"--lang {choice!r} is not a report language; allowed: nl, en, both")
    return (fmt.check_lang(choice),)


def write_report(model: ReportModel, out: Path, langs: tuple[Lang, ...] = ("nl", "en")) -> list[Path]:
    """Write report.<lang>.html and report.<lang>.pdf for each language into ``out``; returns the paths."""
    from fedsim.report.pdf import write_pdf

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for lang in langs:
        doc = build_document(model, lang)
        html = out / f"report.{lang}.html"
        html.write_text(render_html(doc), encoding="utf-8")
        pdf = out / f"report.{lang}.pdf"
        write_pdf(doc, pdf)
        written += [html, pdf]
    return written
