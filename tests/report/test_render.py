"""The report's rendering from a hand-built ReportModel with known numbers: page one's wording per language, the
same section titles in the HTML and the PDF (read back with pypdf), a self-contained HTML page, missing runs
named on page one, and a sentence (not a silent gap) for every table the experiment did not measure."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from fedsim.report.document import Document, Figure
from fedsim.report.model import (
    FraudTypeSection,
    Limitations,
    Methods,
    PageOne,
    Range,
    ReportModel,
    RunProblem,
    Traced,
)
from fedsim.report.pdf import pdf_bytes
from fedsim.report.render import build_document, page_one, render_html, write_report

RUNS = ("run-a0", "run-a1", "run-b0", "run-b1")


def _traced(est: float, lo: float, hi: float, unit: str) -> Traced:
    return Traced(Range(est, lo, hi), unit, RUNS, f"{unit} from the fixture")  # type: ignore[arg-type]


def _section(fraud_type: str, *, measured: bool) -> FraudTypeSection:
    rng = np.random.default_rng(0)
    empty = pd.DataFrame()
    if not measured:
        return FraudTypeSection(fraud_type, "ed_h0", None, None, *([empty] * 9))
    regimes = ["status_quo", "pooled"]
    ed = pd.DataFrame(
        [(r, h, 0.3 + 0.1 * i - 0.002 * h, 0.25 + 0.1 * i - 0.002 * h, 0.35 + 0.1 * i - 0.002 * h)
         for i, r in enumerate(regimes) for h in (0, 1, 6, 24, 72)],
        columns=["regime", "horizon_h", "estimate", "lo", "hi"],
    )  # fmt: skip
    lead = pd.DataFrame({"regime": np.repeat(regimes, 40), "lead_time_h": rng.exponential(20, 80)})
    phases = pd.DataFrame(
        [(r, p, s) for r in regimes for p, s in (("contact", 0.2), ("money_transfer", 0.3), ("cash_out", 0.1))],
        columns=["regime", "phase", "share"],
    )
    values = pd.DataFrame(
        [("bank_1", 0.141, 0.117, 0.173, 0.15, 0.12, 0.18, 0.1, 0.05, 0.15),
         ("telco", 0.127, 0.100, 0.145, 0.13, 0.1, 0.16, 0.08, 0.02, 0.12)],
        columns=["partner", "shapley", "shapley_lo", "shapley_hi", "banzhaf", "banzhaf_lo", "banzhaf_hi",
                 "loo", "loo_lo", "loo_hi"],
    )  # fmt: skip
    forms = pd.DataFrame([("reports", 0.046, 0.025, 0.064), ("pooled", 0.031, 0.003, 0.062)],
                         columns=["regime", "estimate", "lo", "hi"])  # fmt: skip
    steps = pd.DataFrame(
        [("rules", "rules", 0.2, 0.15, 0.25), ("own_models", "status_quo", 0.3, 0.25, 0.35),
         ("sharing", "pooled", 0.33, 0.28, 0.38)],
        columns=["step", "regime", "estimate", "lo", "hi"],
    )  # fmt: skip
    waterfall = pd.DataFrame(
        [(0, "bank_1", 0.2, 0.15, 0.25, 0.2), (1, "bank_1+telco", 0.3, 0.25, 0.35, 0.1)],
        columns=["step", "coalition", "value", "lo", "hi", "gain"],
    )
    heatmap = pd.DataFrame(
        [(c, r, v) for c, v in (("bank_1", 0.2), ("telco", 0.1), ("bank_1+telco", 0.3)) for r in regimes],
        columns=["coalition", "regime", "value"],
    )
    privacy = pd.DataFrame(
        [("pooled", "bank_1+telco", e, 0.2 + 0.01 * min(e, 10), 0.15, 0.35) for e in (1.0, 4.0, float("inf"))],
        columns=["regime", "coalition", "epsilon", "estimate", "lo", "hi"],
    )
    return FraudTypeSection(
        fraud_type, "ed_h0", ("bank_1", "telco"), ("bank_1",), values, forms, steps, ed, lead, phases, waterfall,
        heatmap, privacy, every_partner_gains=True, returns_diminish=True,
    )  # fmt: skip


def report_model(*, problems: list[RunProblem] | None = None, significant: bool = True) -> ReportModel:
    """A small model with known numbers: ED(0) share +0.123 [0.05, 0.2] (or [−0.02, 0.2] when not significant),
    12.4 extra cases, €9,600 in the world, €1.2M in the Netherlands, ε = 2 (odds ×7.4)."""
    lo = 0.05 if significant else -0.02
    page = PageOne(
        contrast=("pooled", "status_quo"),
        fraud_type="all",
        extra_cases=_traced(12.4, 5.0 if significant else -2.0, 20.0, "cases"),
        extra_share=_traced(0.123, lo, 0.2, "share"),
        euros_world=_traced(9600.0, 1500.0 if significant else -1500.0, 21400.0, "eur"),
        euros_nl=_traced(1.2e6, 0.2e6 if significant else -0.2e6, 2.5e6, "eur"),
        nl_assumptions={"victims_per_year": 2.2e6, "prevalence_multiplier": 40.0},
        privacy_odds=_traced(7.389, 7.389, 7.389, "odds"),
        epsilon_person=_traced(2.0, 2.0, 2.0, "epsilon"),
        problems=problems or [],
    )
    methods = Methods(
        experiment="demo", description="a fixture", run_ids={f"cell {i}": r for i, r in enumerate(RUNS)},
        world_hashes=["w0rldhash"], git_commits=["abc1234"], config_hashes=["c0nf"], seeds=[0, 1],
        tracking_uri="sqlite:///mlflow.db", generated_at="2026-12-01T02:50:00+00:00",
    )  # fmt: skip
    limitations = Limitations(
        prevalence_multipliers={"helpdesk": 40.0, "purchase": 2.5}, train_window_days=70, test_window_days=45,
        world_persons=2000, world_days=120, epsilon_covers=["training_examples", "per_person_composition"],
        epsilon_does_not_cover=["test_scores", "reports_shared"],
    )  # fmt: skip
    audit = pd.DataFrame(
        [("membership", "pooled", 1.0, 0.52, 0.73, True)],
        columns=["check", "regime", "epsilon", "statistic", "bound", "passed"],
    )
    register = pd.DataFrame(
        [("reports", "salted keys of reported entities", "salting", "linkage by a partner")],
        columns=["regime", "what_leaves", "protected_by", "residual_risk"],
    )
    return ReportModel(
        experiment="demo", page_one=page,
        sections=[_section("all", measured=True), _section("helpdesk", measured=False)],
        audit=audit, leakage_register=register, methods=methods, limitations=limitations,
        parameters={"split.test_days": "45", "world.preset": "small"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def model() -> ReportModel:
    return report_model()


@pytest.fixture(scope="module")
def docs(model: ReportModel) -> dict[str, Document]:
    return {lang: build_document(model, lang) for lang in ("nl", "en")}


def _page_one_text(model: ReportModel, lang: str) -> str:
    section = page_one(model, lang)  # type: ignore[arg-type]
    text = " ".join(getattr(b, "text", " ".join(getattr(b, "items", ()))) for b in section.blocks)
    return text.replace("\u00a0", " ")


def _pdf_text(doc: Document) -> str:
    reader = PdfReader(io.BytesIO(pdf_bytes(doc)))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


def _html_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'").replace("&amp;", "&")


def test_page_one_numbers_in_each_language(model: ReportModel, docs: dict[str, Document]) -> None:
    nl, en = _page_one_text(model, "nl"), _page_one_text(model, "en")
    assert docs["nl"].sections[0].title == "In het kort" and docs["en"].sections[0].title == "In brief"
    assert "12,3%" in nl and "12.3%" not in nl
    assert "12.3%" in en and "12,3%" not in en
    assert "bandbreedte +5,0% tot +20,0%" in nl and "range +5.0% to +20.0%" in en
    assert "€ 9.600" in nl and "€9,600" in en
    assert "€ 1,2 mln" in nl and "€1.2M" in en
    assert "×7,4" in nl and "×7.4" in en
    assert "fraudezaken méér" in nl and "12 more fraud cases" in en


def test_not_significant_is_no_measurable_difference() -> None:
    text = _page_one_text(report_model(significant=False), "en")
    assert "no measurable difference" in text and "more fraud cases" not in text
    assert "from −2 to +20 cases" in text
    nl = _page_one_text(report_model(significant=False), "nl")
    assert "geen meetbaar verschil" in nl and "méér" not in nl


def test_a_per_person_epsilon_beyond_any_practical_bound_is_worded_not_printed() -> None:
    # The default world's pooled chain at ε = 4 per model reached ε = 1809 for its worst person: e^ε overflows a float.
    vacuous = replace(
        report_model(),
        page_one=replace(
            report_model().page_one,
            privacy_odds=_traced(float("inf"), 1.8e9, float("inf"), "odds"),
            epsilon_person=_traced(1809.1, 21.3, 1809.1, "epsilon"),
        ),
    )
    en, nl = _page_one_text(vacuous, "en"), _page_one_text(vacuous, "nl")
    assert "ε = 1,809.1" in en and "protects nobody in practice" in en and "more than a billion-fold" in en
    assert "ε = 1.809,1" in nl and "beschermt in de praktijk niemand" in nl and "meer dan een miljard" in nl
    assert "inf" not in en and "×∞" not in en
    # an ordinary ε keeps its number
    assert "×7.4" in _page_one_text(report_model(), "en")


def test_problems_are_named_on_page_one() -> None:
    problems = [
        RunProblem("pooled · bank_1+telco · gbt · seed 2", "missing", None, ""),
        RunProblem("watchlist · all · logistic · seed 0", "failed", "f00dcafe", "status FAILED"),
    ]
    for lang, word in (("nl", "mislukt"), ("en", "failed")):
        text = _page_one_text(report_model(problems=problems), lang)
        assert "pooled · bank_1+telco · gbt · seed 2" in text
        assert "watchlist · all · logistic · seed 0" in text and word in text and "f00dcafe" in text
    clean = _page_one_text(report_model(), "en")
    assert "All 4 runs" in clean and "failed" not in clean


def test_html_and_pdf_carry_the_same_titles_in_order(docs: dict[str, Document]) -> None:
    for doc in docs.values():
        titles = doc.titles()
        assert len(titles) == len(set(titles)) + 9  # the 9 topics repeat in the second fraud type
        for text in (_html_text(render_html(doc)), _pdf_text(doc)):
            position = -1
            for title in titles:
                found = text.find(title, position + 1)
                assert found > position, f"{title!r} missing or out of order ({doc.lang})"
                position = found


def test_html_is_self_contained(docs: dict[str, Document]) -> None:
    for doc in docs.values():
        html = render_html(doc)
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
        assert "<script" not in html and "@import" not in html and "url(" not in html
        n_figures = sum(isinstance(b, Figure) for s in doc.sections for b in s.blocks)
        assert n_figures == 6 and html.count('src="data:image/png;base64,') == n_figures
        assert f'<html lang="{doc.lang}">' in html


def test_unmeasured_tables_say_so(docs: dict[str, Document]) -> None:
    nl, en = docs["nl"], docs["en"]
    helpdesk = [s for s in en.sections if s.title == "Bank-helpdesk fraud"]
    assert helpdesk, en.titles()
    start = en.sections.index(helpdesk[0])
    topics = en.sections[start + 1 : start + 10]
    said = " ".join(b.text for s in topics for b in s.blocks if hasattr(b, "text"))
    assert said.count("This experiment did not") == 9
    assert "coalitions: lattice" in said and "privacy: epsilon" in said
    assert "Bankhelpdeskfraude" in nl.titles()


def test_write_report_files(model: ReportModel, tmp_path: Path) -> None:
    paths = write_report(replace(model, sections=model.sections[1:]), tmp_path, ("en",))
    assert [p.name for p in paths] == ["report.en.html", "report.en.pdf"]
    first = PdfReader(paths[1]).outline[0]
    assert not isinstance(first, list) and first.title == "In brief"


# --- through gather_report and the CLI, on the report's real test experiment (tests/report/conftest.py) ---------


@pytest.fixture(scope="module")
def cli_report(tracked_experiment_with_problems: tuple[Path, str, Path], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """`fedsim report --lang nl` on the store with a deleted and a FAILED run: (printed output, out dir). Dutch
    only: gathering and drawing both languages would double the cost; English is covered by the model tests."""
    from typer.testing import CliRunner

    from fedsim.cli import app

    path, uri, workdir = tracked_experiment_with_problems
    out = tmp_path_factory.mktemp("cli-report")
    args = ["report", str(path), "--lang", "nl", "--tracking-uri", uri, "--workdir", str(workdir), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output, out


def _html_page_one(html: str) -> str:
    """The text of the report's first section (page one)."""
    return _html_text(html.split('class="page-one">', 1)[1].split("</section>", 1)[0]).replace("\u00a0", " ")


def _broken_run_names(tracked_experiment: tuple[Path, str, Path]) -> list[str]:
    """The run names of the cells the problem store deleted and failed, read from the complete store (picked as
    the conftest picks them: the first coalition in order)."""
    from fedsim.tracking import Tracker
    from tests.report.conftest import DELETED, EXPERIMENT, FAILED

    runs = Tracker(tracked_experiment[1], EXPERIMENT).runs_table(EXPERIMENT)
    names = []
    for regime, eps, seed in (DELETED, FAILED):
        hit = runs[(runs["regime"] == regime) & (runs["epsilon"] == eps) & (runs["seed"] == seed)]
        names.append(str(hit.sort_values("coalition")["run_name"].iloc[0]))
    return names


@pytest.mark.slow  # ≈ 25 s of its own (gather + the Dutch figures and PDF) on top of the shared experiment
@pytest.mark.xdist_group("report")  # the worker that already built the shared experiment
def test_cli_report_names_the_broken_runs_on_page_one(cli_report, tracked_experiment) -> None:  # noqa: ANN001
    output, out = cli_report
    # the paths follow the "report written:" line (a log line of the store may come before it)
    printed = output.split("report written:", 1)[1].splitlines()[1:]
    assert [Path(line.strip()).name for line in printed] == ["report.nl.html", "report.nl.pdf"]
    html = (out / "report.nl.html").read_text(encoding="utf-8")
    page = _html_page_one(html)
    deleted, failed = _broken_run_names(tracked_experiment)
    assert f"{deleted} — ontbreekt" in page and f"{failed} — mislukt" in page
    assert "Niet alle runs van dit experiment zijn afgerond" in page


@pytest.mark.slow  # shares the fixture above
@pytest.mark.xdist_group("report")
def test_cli_report_html_and_pdf_titles_match(cli_report) -> None:  # noqa: ANN001
    _, out = cli_report
    html = (out / "report.nl.html").read_text(encoding="utf-8")
    titles = [_html_text(t).strip() for t in re.findall(r"<h[234]>(.*?)</h[234]>", html)]
    assert titles[0] == "In het kort" and "Bankhelpdeskfraude" in titles and len(titles) > 20
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    pdf = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(out / "report.nl.pdf").pages))
    position = -1
    for title in titles:
        found = pdf.find(title, position + 1)
        assert found > position, f"{title!r} missing or out of order in the PDF"
        position = found


def test_cli_refuses_a_bad_language_naming_it() -> None:
    from typer.testing import CliRunner

    from fedsim.cli import app

    result = CliRunner().invoke(app, ["report", "demo", "--lang", "fr"])
    assert result.exit_code == 2
    assert "'fr'" in result.output and "nl, en, both" in result.output
