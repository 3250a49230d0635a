"""Open one local HTML file in Debian's headless Chromium and report what a reader's browser would see go wrong.

The report must be self-contained (issue 12: figures embedded, no network requests), so the harness records every
request the page makes, not only failed ones: a request to any address other than the file itself or a data: URI
is a finding even when it would succeed. Such requests are aborted before they leave the machine, so a test never
depends on (or reaches) the network. Only Debian's ``chromium`` package is used (Playwright's own browser downloads
are not available here); ``make test`` installs it (see the Makefile).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Request, Route, ViewportSize, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# A4 at 150 dpi is 1240 × 1754 pixels: the screenshot of the viewport is page one as printed.
VIEWPORT = ViewportSize(width=1240, height=1754)
# Headless in a container as root (no sandbox, no GPU); nothing Chromium does on its own (updates, sync, QUIC
# probes, first-run pages) may add requests of its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A broken image is an <img> the browser could not decode into pixels (naturalWidth 0 once the page has loaded).
BROKEN_IMAGES_JS = "els => els.filter(e => !e.complete || e.naturalWidth === 0).map(e => e.getAttribute('src') || '')"


class ChromiumMissing(RuntimeError):
    """Debian's Chromium is not installed: the browser test fails with this reason, it is never skipped."""


@dataclass
class PageReport:
    """What opening one HTML file produced.

    url: the file:// URL opened. lang: ``<html lang>``. console_errors: console messages of type error.
    page_errors: uncaught script exceptions. requests: every request URL, in order (the file itself included).
    broken_images: ``src`` of every ``<img>`` without pixels. h2_titles: the text of every ``<h2>``, in order.
    screenshot: PNG of the first viewport (page one).
    """

    url: str
    lang: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    h2_titles: list[str] = field(default_factory=list)
    screenshot: Path = Path()

    @property
    def foreign_requests(self) -> list[str]:
        """Requests other than the file itself and data: URIs (what a self-contained page must not make)."""
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]


def require_chromium() -> Path:
    """The Chromium binary, or :class:`ChromiumMissing` saying how the project installs it."""
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        raise ChromiumMissing(
            f"Debian's Chromium is not at {CHROMIUM}: `make test` installs it as root "
            "(apt-get install --no-install-recommends chromium); the browser test is never skipped"
        )
    return CHROMIUM


def _only_local(route: Route) -> None:
    # Recorded by the request listener either way; only the file itself and data: URIs are served.
    url = route.request.url
    if url.startswith(("file:", "data:")):
        route.continue_()
    else:
        route.abort("blockedbyclient")


def open_page(html: Path, *, workdir: Path) -> PageReport:
    """Open ``html`` in a fresh headless Chromium profile under ``workdir``; screenshot page one there.

    Waits for the load event (every image fetched or failed) before reading images and titles.
    """
    executable = require_chromium()
    url = html.resolve().as_uri()
    report = PageReport(url=url, lang="", screenshot=workdir / f"{html.stem}.page1.png")
    profile = workdir / f"{html.stem}.profile"
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(executable), headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: _console_error(m, report.console_errors))
            page.on("pageerror", lambda e: report.page_errors.append(str(e)))
            page.on("request", lambda r: _record(r, report.requests))
            page.on("websocket", lambda ws: report.requests.append(ws.url))
            context.route("**/*", _only_local)
            page.goto(url, wait_until="load")
            report.lang = page.evaluate("document.documentElement.lang")
            report.broken_images = page.eval_on_selector_all("img", BROKEN_IMAGES_JS)
            report.h2_titles = page.eval_on_selector_all("h2", "els => els.map(e => e.innerText.trim())")
            page.screenshot(path=str(report.screenshot), full_page=False)
        finally:
            context.close()
    return report


def _console_error(message: ConsoleMessage, errors: list[str]) -> None:
    if message.type == "error":
        errors.append(message.text)


def _record(request: Request, requests: list[str]) -> None:
    requests.append(request.url)
