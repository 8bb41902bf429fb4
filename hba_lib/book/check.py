"""The book checked in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium, on the site served from 127.0.0.1.

For every page: no JavaScript console error (a failed request is one), no request outside
the site (no CDN), every ``<img>`` decoded (``naturalWidth > 0``) with an alt text, every
equation typeset, every internal link to a file that exists and every ``#anchor`` to an
element of that id. Then the search finds ``omega`` on the pages that define it, and a
toggle opens an answer. :func:`check_site` returns the problems found (empty: it
passes) and, when asked, saves screenshots at 1280 px wide.

Nothing is downloaded: the browser and its driver are the system's (``CHROMIUM``,
``CHROMEDRIVER``), and Selenium Manager is kept offline.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
SEARCH_TERM = "omega"
SEARCH_MUST_FIND = ("docs/glossary.html", "docs/algorithm.html")
"""Pages that define omega: the search must list them."""
WIDTH, HEIGHT = 1280, 1000
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    f"--window-size={WIDTH},{HEIGHT}",
)


class BrowserMissing(RuntimeError):
    """Chromium or its driver is not installed here."""


def _first(candidates: tuple[str, ...], env: str) -> str | None:
    path = os.environ.get(env) or next((c for c in candidates if Path(c).is_file()), None)
    return path if path and Path(path).is_file() else None


def browser_paths() -> tuple[str, str]:
    """(chromium, chromedriver) on this machine, or :class:`BrowserMissing` saying what to do."""
    chromium, driver = _first(CHROMIUM, "HBA_CHROMIUM"), _first(CHROMEDRIVER, "HBA_CHROMEDRIVER")
    if chromium is None or driver is None:
        missing = [n for n, p in (("chromium", chromium), ("chromium-driver", driver)) if not p]
        raise BrowserMissing(
            f"no {' and no '.join(missing)} here: `apt-get install -y chromium chromium-driver` "
            "(make setup does it when run as root), or set HBA_CHROMIUM / HBA_CHROMEDRIVER"
        )
    return chromium, driver


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request lines on stderr
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 at a free port for the ``with`` block; yield its URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium under Selenium, with a fresh profile, closed after the block."""
    binary, driver_path = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must fetch nothing (restored below)
    profile = tempfile.mkdtemp(prefix="hba-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
        driver.set_window_size(WIDTH, HEIGHT)
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        if offline is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = offline


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        for k, v in attrs:
            if k in ("id", "name") and v:
                self.ids.add(v)


@functools.lru_cache(maxsize=512)
def _ids_of(path: Path) -> frozenset[str]:
    p = _Ids()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(p.ids)


def pages_of(site: Path) -> list[Path]:
    """The HTML pages of a built site (its assets and Sphinx's generated index left out)."""
    return sorted(
        p
        for p in Path(site).rglob("*.html")
        if not any(part.startswith("_") for part in p.relative_to(site).parts)
    )


def link_problem(site: Path, base: str, href: str) -> str | None:
    """Why an internal link (absolute URL under ``base``) does not resolve, else None."""
    parts = urlsplit(href)
    rel = unquote(parts.path)[len(urlsplit(base).path) :].lstrip("/")
    target = Path(site) / rel
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"dead link {href}: no file {rel or 'index.html'}"
    if parts.fragment and target.suffix == ".html":
        if unquote(parts.fragment) not in _ids_of(target.resolve()):
            return f"dead anchor {href}: no id {parts.fragment!r} in {rel}"
    return None


_PAGE_JS = """
const imgs = Array.from(document.images);
imgs.forEach(i => { i.loading = 'eager'; });
return Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 10000); })))
  .then(() => ({
    images: imgs.map(i => [i.currentSrc || i.src, i.naturalWidth, i.getAttribute('alt')]),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    requests: performance.getEntriesByType('resource').map(e => e.name),
    ready: document.readyState,
  }));
"""


_MATH_JS = """
const math = document.querySelectorAll('.math').length;
const done = document.querySelectorAll('.MathJax, .MathJax_Display, mjx-container').length;
const errors = Array.from(document.querySelectorAll('.MathJax_Error, merror, mjx-merror'))
  .map(e => e.textContent);
return [math, done, errors];
"""


def check_math(driver, rel: str, wait_s: float = 20.0) -> list[str]:
    """Equations on the page (class ``math``) are typeset by MathJax, without a TeX error."""
    end = time.perf_counter() + wait_s
    while True:
        math, done, errors = driver.execute_script(_MATH_JS)
        if not math:
            return []
        if done >= math or time.perf_counter() > end:
            break
        time.sleep(0.2)
    problems = [f"{rel}: TeX error in an equation: {e}" for e in errors]
    if done < math:
        problems.append(f"{rel}: {math - done} of {math} equations not typeset by MathJax")
    return problems


def _console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def check_page(driver, site: Path, base: str, page: Path) -> list[str]:
    """The problems of one page: console errors, undecoded images, dead links and anchors."""
    rel = page.relative_to(site).as_posix()
    driver.get(f"{base}/{rel}")
    info = driver.execute_script(_PAGE_JS)
    problems = check_math(driver, rel)  # (this also lets late errors reach the log)
    time.sleep(0.2)
    problems += [f"{rel}: console error: {m}" for m in _console_errors(driver)]
    for src, width, alt in info["images"]:
        if not width:
            problems.append(f"{rel}: image not decoded: {src}")
        alt = (alt or "").strip()
        if not alt or re.search(r"\.(png|jpe?g|gif|svg|webp)$", alt, re.I) or src.endswith(alt):
            problems.append(f"{rel}: image without alt text (none, or its file name): {src}")
    for url in dict.fromkeys(info["requests"]):  # the site is whole: nothing from elsewhere
        if not url.startswith(base + "/") and not url.startswith(("data:", "blob:")):
            problems.append(f"{rel}: requests a resource from outside the site: {url}")
    for href in dict.fromkeys(info["links"]):
        if href.startswith(base + "/"):
            why = link_problem(site, base, href)
            if why:
                problems.append(f"{rel}: {why}")
    return problems


def check_search(driver, base: str, term: str = SEARCH_TERM) -> tuple[list[str], list[str]]:
    """(problems, pages found): the site's search for ``term`` lists every page of
    :data:`SEARCH_MUST_FIND`."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/search.html?q={term}")

    def finished(d):  # the summary line appears when the search is done, found or not
        return d.execute_script(
            "const s = document.querySelector('#search-results .search-summary');"
            "return !!(s && s.textContent.trim())"
        )

    try:
        WebDriverWait(driver, 30).until(finished)
    except Exception:  # noqa: BLE001 - a timeout is the finding
        return [f"search for {term!r}: no result summary within 30 s"], []
    found = driver.execute_script(
        "return Array.from(document.querySelectorAll('#search-results li a')).map(a => a.href)"
    )
    pages = sorted({urlsplit(h).path[len(urlsplit(base).path) :].lstrip("/") for h in found})
    problems = [
        f"search for {term!r} does not list {p} (found: {', '.join(pages)})"
        for p in SEARCH_MUST_FIND
        if p not in pages
    ]
    problems += [f"search page: console error: {m}" for m in _console_errors(driver)]
    return problems, pages


def check_toggle(
    driver, base: str, page: str = "exercises.html", shot: Path | None = None
) -> list[str]:
    """A toggle opens an answer: the first "Answer" dropdown of ``page`` is closed, then open
    and its text visible after a click."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/{page}")
    driver.execute_script(
        "document.querySelectorAll('.bd-sidebar-primary, .bd-sidebar-primary *')"
        ".forEach(e => { e.scrollTop = 0; });"
    )
    answers = [
        d
        for d in driver.find_elements(By.CSS_SELECTOR, "details")
        if d.find_element(By.TAG_NAME, "summary").text.strip().startswith("Answer")
    ]
    if not answers:
        return [f"{page}: no answer toggle (a <details> whose summary starts with 'Answer')"]
    box = answers[0]
    body = box.find_elements(By.CSS_SELECTOR, "summary ~ *")
    if box.get_attribute("open") is not None or (body and body[0].is_displayed()):
        return [f"{page}: the first answer is open before a click"]
    summary = box.find_element(By.TAG_NAME, "summary")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", summary)
    summary.click()
    time.sleep(0.5)
    body = box.find_elements(By.CSS_SELECTOR, "summary ~ *")
    if box.get_attribute("open") is None or not body or not body[0].is_displayed():
        return [f"{page}: a click on the first answer's toggle does not show it"]
    if shot is not None:
        driver.execute_script(  # the question above its toggles, the page's top if it fits
            "const r = arguments[0].getBoundingClientRect();"
            "window.scrollTo(0, Math.max(0, r.top + window.scrollY - 600));",
            box,
        )
        time.sleep(0.3)
        driver.save_screenshot(str(shot))
    return []


def screenshot(driver, base: str, page: str, out: Path, scroll_to: str | None = None) -> Path:
    """Save ``page`` at 1280 px wide into ``out`` (scrolled to the first ``scroll_to`` element)."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/{page}")
    driver.execute_script(_PAGE_JS)
    driver.execute_script(  # the theme keeps the sidebar's scroll from the pages checked before
        "document.querySelectorAll('.bd-sidebar-primary, .bd-sidebar-primary *')"
        ".forEach(e => { e.scrollTop = 0; });"
    )
    if scroll_to:
        els = driver.find_elements(By.CSS_SELECTOR, scroll_to)
        if els:
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", els[0])
            driver.execute_script("window.scrollBy(0, -80);")
    time.sleep(1.0)  # MathJax typesets after load
    driver.save_screenshot(str(out))
    return out


def check_site(site: Path, shots: Path | None = None, pages: list[Path] | None = None) -> list[str]:
    """Every problem of the built site ``site`` in headless Chromium (empty: it passes); with
    ``shots``, save the landing page, a notebook page and an opened answer there."""
    site = Path(site).resolve()
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"no index.html in {site}: build the book first (make book)")
    _ids_of.cache_clear()
    problems: list[str] = []
    with serve(site) as base, chromium() as driver:
        for page in pages if pages is not None else pages_of(site):
            problems += check_page(driver, site, base, page)
        found, _ = check_search(driver, base)
        problems += found
        shot = None
        if shots is not None:
            shots = Path(shots)
            shots.mkdir(parents=True, exist_ok=True)
            shot = shots / "book_exercise_open.png"
        problems += check_toggle(driver, base, shot=shot)
        if shots is not None:
            screenshot(driver, base, "index.html", shots / "book_landing.png")
            notebook = sorted((site / "notebooks").glob("03_*.html")) or sorted(
                (site / "notebooks").glob("*.html")
            )
            if notebook:
                rel = notebook[0].relative_to(site).as_posix()
                screenshot(driver, base, rel, shots / "book_notebook.png", "div.math, img")
    return problems


def main(argv: list[str] | None = None) -> int:
    """``python -m hba_lib.book.check SITE [--shots DIR]``."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("site", type=Path, nargs="?", default=None, help="default: runs/book/html")
    ap.add_argument("--shots", type=Path, default=None, help="save screenshots here")
    args = ap.parse_args(argv)
    from hba_lib.book.notebooks import BOOK_RUNS

    site = args.site or BOOK_RUNS / "html"
    start = time.perf_counter()
    problems = check_site(site, shots=args.shots)
    for p in problems:
        print(f"PROBLEM {p}")
    n = len(pages_of(site))
    print(
        f"[book] browser check of {n} pages: {len(problems)} problems, {time.perf_counter() - start:.0f} s"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
