"""The effectiveness report in a real browser (issue 12, "Must show"): Debian's headless Chromium, never skipped.

First the harness (:mod:`tests.browser`) is shown to catch what it looks for on tiny pages written here: a good
page passes, a broken image and a request to a local closed port are both found. Then both languages' HTML reports
are opened: no console or page errors, no request but the file itself and data: URIs, no image without pixels,
``<html lang>`` equal to the language, a screenshot of page one; and the PDF's section titles (text extracted with
pypdf) equal the HTML's ``<h2>`` titles in order.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.browser import ChromiumMissing, PageReport, open_page

pytestmark = pytest.mark.xdist_group("report")

# Port 9 (discard) on the loopback: nothing listens, and no outside address is ever involved.
CLOSED_PORT_URL = "http://127.0.0.1:9/x.png"


def _png_data_uri() -> str:
    """A real 4 × 4 PNG, embedded as the report embeds its figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    buffer = io.BytesIO()
    plt.imsave(buffer, np.arange(16, dtype=float).reshape(4, 4), format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _page(folder: Path, name: str, body: str, *, lang: str = "en") -> Path:
    path = folder / f"{name}.html"
    path.write_text(
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{name}</title></head>'
        f"<body>{body}</body></html>",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def tiny_pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PageReport]:
    """Three pages opened once each: good, a corrupt embedded image, an image and a fetch from a closed port."""
    folder = tmp_path_factory.mktemp("tiny-pages")
    pages = {
        "good": _page(folder, "good", f'<h2>Eén</h2><img src="{_png_data_uri()}"><h2>Two</h2>', lang="nl"),
        "broken": _page(folder, "broken", '<h2>Broken</h2><img src="data:image/png;base64,iVBORw0KGgoAAAA=">'),
        "remote": _page(
            folder,
            "remote",
            f'<img src="{CLOSED_PORT_URL}"><script>fetch("http://127.0.0.1:9/data.json")</script>',
        ),
    }
    return {name: open_page(path, workdir=folder) for name, path in pages.items()}


def test_good_page_passes_every_check(tiny_pages: dict[str, PageReport]) -> None:
    good = tiny_pages["good"]
    assert good.console_errors == [] and good.page_errors == []
    assert good.foreign_requests == [] and good.requests[0] == good.url
    assert good.broken_images == []
    assert good.lang == "nl"
    assert good.h2_titles == ["Eén", "Two"]
    assert good.screenshot.stat().st_size > 0 and good.screenshot.read_bytes()[:4] == b"\x89PNG"


def test_harness_finds_an_image_without_pixels(tiny_pages: dict[str, PageReport]) -> None:
    broken = tiny_pages["broken"]
    assert len(broken.broken_images) == 1 and broken.broken_images[0].startswith("data:image/png")
    assert broken.foreign_requests == []


def test_harness_finds_requests_to_a_closed_local_port(tiny_pages: dict[str, PageReport]) -> None:
    remote = tiny_pages["remote"]
    assert CLOSED_PORT_URL in remote.foreign_requests
    assert "http://127.0.0.1:9/data.json" in remote.foreign_requests
    assert remote.broken_images == [CLOSED_PORT_URL]
    assert remote.console_errors, "a blocked image and fetch are console errors"
    assert any("fetch" in e for e in remote.page_errors), "the rejected fetch is an uncaught page error"


SCREENSHOTS = Path(__file__).resolve().parents[1] / "reports" / "screenshots"


def keep_screenshot(report: PageReport, target: Path = SCREENSHOTS) -> Path | None:
    """Copy page one's screenshot to ``target`` (reports/screenshots/) when FEDSIM_KEEP_SCREENSHOTS is set (for
    the closing note); otherwise it stays in the test's tmp dir only. Returns the copy, if made."""
    if not os.environ.get("FEDSIM_KEEP_SCREENSHOTS"):
        return None
    target.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(report.screenshot, target / report.screenshot.name))


def test_screenshot_is_kept_only_when_asked(
    tiny_pages: dict[str, PageReport], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tiny_pages["good"]
    monkeypatch.delenv("FEDSIM_KEEP_SCREENSHOTS", raising=False)
    assert keep_screenshot(good, tmp_path / "kept") is None and not (tmp_path / "kept").exists()
    monkeypatch.setenv("FEDSIM_KEEP_SCREENSHOTS", "1")
    kept = keep_screenshot(good, tmp_path / "kept")
    assert kept is not None and kept.read_bytes() == good.screenshot.read_bytes()


def test_a_missing_chromium_is_a_failure_that_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.browser

    monkeypatch.setattr(tests.browser, "CHROMIUM", Path("/nonexistent/chromium"))
    with pytest.raises(ChromiumMissing, match="make test"):
        open_page(Path(__file__), workdir=Path("/nonexistent"))


LANGS = ("nl", "en")


@pytest.fixture(scope="module")
def report_dir(tracked_experiment: tuple[Path, str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both languages' reports of the shared test experiment, written by `fedsim report --lang both`."""
    from typer.testing import CliRunner

    from fedsim.cli import app

    path, uri, workdir = tracked_experiment
    out = tmp_path_factory.mktemp("report-browser")
    args = ["report", str(path), "--lang", "both", "--out", str(out), "--tracking-uri", uri, "--workdir", str(workdir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def opened(report_dir: Path) -> dict[str, PageReport]:
    """Each language's HTML report opened once in Chromium (screenshots beside the reports)."""
    shots = report_dir / "browser"
    shots.mkdir()
    return {lang: open_page(report_dir / f"report.{lang}.html", workdir=shots) for lang in LANGS}


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_report_opens_cleanly_in_chromium(opened: dict[str, PageReport], lang: str) -> None:
    page = opened[lang]
    assert page.console_errors == [], page.console_errors
    assert page.page_errors == [], page.page_errors
    assert page.foreign_requests == [], f"the report must be self-contained: {page.foreign_requests}"
    assert page.requests[0] == page.url
    assert page.broken_images == [], page.broken_images
    assert page.lang == lang
    assert len(page.h2_titles) >= 3 and all(page.h2_titles), page.h2_titles
    assert page.screenshot.read_bytes()[:4] == b"\x89PNG"
    keep_screenshot(page)


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_pdf_section_titles_equal_the_html_h2_titles(
    opened: dict[str, PageReport], report_dir: Path, lang: str
) -> None:
    """The PDF's chapters (its top-level bookmarks) are the HTML's <h2> titles in order, and each stands in the
    PDF's extracted text in that order."""
    from pypdf import PdfReader

    reader = PdfReader(report_dir / f"report.{lang}.pdf")
    chapters = [_words(item.title or "") for item in reader.outline if not isinstance(item, list)]
    titles = [_words(t) for t in opened[lang].h2_titles]
    assert chapters == titles
    text = _words(" ".join(page.extract_text() or "" for page in reader.pages))
    position = 0
    for title in titles:
        found = text.find(title, position)
        assert found >= 0, f"{title!r} not in the PDF's text after position {position}"
        position = found + len(title)
