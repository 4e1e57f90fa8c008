"""The built book in a real browser: headless Chromium, driven by Playwright, reads _build/html.

Needs the book built first (the README's first command) and Chromium (Debian's ``chromium``
package; ``.ci/run`` installs it; set ``CHROMIUM`` to use another Chromium or Chrome binary).
Deselect with ``pytest -m "not browser"``. The pages are served over http from a local server that
the tests start; every request to any other host is blocked, so the book must work offline.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDE, NARROW = {"width": 1400, "height": 900}, {"width": 400, "height": 800}
WIDGET_REPRS = ("HBox(", "VBox(", "IntSlider(", "FloatSlider(", "Dropdown(", "Output()", "interactive(")

# Links of the chapter list (primary sidebar) or the page's contents (secondary sidebar) that a
# reader can see and click: inside the window, not covered by anything else.
VISIBLE_LINKS_JS = """(selector) => Array.from(document.querySelectorAll(selector)).filter(a => {
  const r = a.getBoundingClientRect();
  if (r.width <= 0 || r.height <= 0 || r.right <= 0 || r.bottom <= 0 || r.left >= innerWidth || r.top >= innerHeight) return false;
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return hit !== null && (hit === a || a.contains(hit));
}).length"""
CHAPTER_LINKS = ".bd-sidebar-primary nav a, #pst-primary-sidebar-modal nav a"
CONTENTS_LINKS = ".bd-sidebar-secondary nav a, #pst-secondary-sidebar-modal nav a"

# Everything one page shows, read once per page (see `wide_pages`).
READ_PAGE_JS = r"""async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = "eager"; });
  const broken = [];
  for (const img of imgs) {
    try { await img.decode(); } catch (e) { }
    if (!img.complete || img.naturalWidth === 0) broken.push(img.getAttribute("src"));
  }
  const hasMaths = document.querySelector(".bd-article .math") !== null;
  if (hasMaths && window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const article = document.querySelector(".bd-article") || document.body;
  const rawLatex = [];  // visible text outside code that still holds a LaTeX delimiter
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const el = walk.currentNode.parentElement, text = walk.currentNode.data;
    if (!el || el.closest("pre, code, script, style, textarea, mjx-container")) continue;
    if ((text.includes("\\(") || text.includes("\\[")) && el.checkVisibility()) rawLatex.push(text.trim().slice(0, 80));
  }
  const outputs = Array.from(article.querySelectorAll(".cell_output")).map(e => e.innerText).join("\n");
  const icon = document.querySelector("link[rel~='icon']");
  return {
    images: imgs.length, broken,
    hasMaths, typeset: document.querySelectorAll("mjx-container").length,
    mathjax: window.MathJax ? (MathJax.version || "?") : null,
    rawLatex, text: article.innerText, outputs,
    errors: Array.from(article.querySelectorAll(".system-message, .problematic, .output.traceback, .output.error")).map(e => e.innerText.slice(0, 200)),
    widgetScripts: document.querySelectorAll("script[type^='application/vnd.jupyter.widget']").length,
    icon: icon ? icon.href : null,
    iconStatus: icon ? (await fetch(icon.href)).status : null,
  };
}"""


# At a narrow width: what widens the page, or is cut off by a box that scrolls without showing it.
CUT_OFF_JS = r"""() => {
  const bad = [];
  if (document.documentElement.scrollWidth > innerWidth + 1) bad.push(`page is ${document.documentElement.scrollWidth} px wide`);
  for (const el of document.querySelectorAll('.bd-article table, .bd-article pre')) {
    if (!el.checkVisibility()) continue;
    let box = el;  // the box that scrolls it sideways, if any
    while (box && !box.classList.contains('bd-article') && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) box = box.parentElement;
    const what = `${el.tagName.toLowerCase()} "${el.innerText.slice(0, 50).replace(/\s+/g, ' ')}"`;
    if (!box || box.classList.contains('bd-article')) {
      if (el.getBoundingClientRect().right > innerWidth + 1) bad.push(`${what} sticks out of the window`);
    } else if (box.scrollWidth > box.clientWidth + 1 && !box.classList.contains('bs-scroll-x')) {
      bad.push(`${what} scrolls sideways with no cue (beyond-softmax.js marks such boxes .bs-scroll-x)`);
    }
  }
  return bad;
}"""


def _redirect(path: Path) -> str | None:
    """Where a redirect-only page (Jupyter Book's index.html) sends the reader, else None."""
    found = re.match(r'\s*<meta http-equiv="Refresh" content="0; url=([^"]+)"\s*/?>\s*$', path.read_text(), re.I)
    return found.group(1) if found else None


def _pages() -> list[str]:
    """Every HTML page of the built book, relative to _build/html, except redirects."""
    return sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
                  if not p.relative_to(HTML).parts[0].startswith("_") and _redirect(p) is None)


def _front_page() -> str:
    """The page index.html leads to."""
    return _redirect(HTML / "index.html") or "index.html"


@pytest.fixture(scope="module")
def site():
    """Base URL of _build/html served over http on localhost (fails when the book is not built)."""
    if not (HTML / "index.html").is_file():
        pytest.fail(f"{HTML} holds no built book: build it first with the README's first command "
                    "(.venv/bin/jupyter-book build .), then run the tests; or deselect these tests "
                    "with -m 'not browser'", pytrace=False)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(HTML)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(site):
    """Headless Chromium (the system's, never a downloaded one); needs the built book first."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: .venv/bin/pip install -r requirements.txt", pytrace=False)
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Chromium not found: install it (apt-get install -y chromium, as .ci/run does) or set "
                    "CHROMIUM to a Chromium/Chrome binary; or deselect these tests with -m 'not browser'",
                    pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _offline(browser, site, **options):
    """A new browser context (fresh storage) that aborts every request off localhost."""
    ctx = browser.new_context(**options)
    ctx.route("**/*", lambda r: r.continue_() if r.request.url.startswith((site, "data:")) else r.abort())
    return ctx


@pytest.fixture
def context_factory(browser, site):
    """Makes offline browser contexts (see `_offline`) and closes them after the test."""
    made = []

    def make(**options):
        made.append(_offline(browser, site, **options))
        return made[-1]

    yield make
    for ctx in made:
        ctx.close()


def _open(ctx, url):
    """Open url in ctx, recording console errors, uncaught exceptions and failed requests."""
    page = ctx.new_page()
    page.problems = []
    page.on("console", lambda m: page.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: page.problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: page.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(url, wait_until="load")
    return page


@pytest.fixture(scope="module")
def wide_pages(browser, site):
    """Every page opened at 1400 px with the network off localhost blocked: what it logged and shows."""
    ctx = _offline(browser, site, viewport=WIDE)
    seen = {}
    for name in _pages():
        page = _open(ctx, site + name)
        info = page.evaluate(READ_PAGE_JS)
        page.wait_for_timeout(200)  # late console messages
        info["problems"] = list(page.problems)
        seen[name] = info
        page.close()
    ctx.close()
    return seen


def _report(failures: dict) -> str:
    return "\n".join(f"{page}: {what}" for page, what in failures.items())


def test_book_has_its_pages(wide_pages):
    assert _front_page() in wide_pages, f"index.html leads to {_front_page()}, which is not a page of the book"
    chapters = [p for p in wide_pages if Path(p).name[:2].isdigit()]
    assert chapters, f"no chapter pages in {HTML}"


def test_every_page_loads_without_console_errors_or_failed_requests(wide_pages):
    failures = {p: info["problems"] for p, info in wide_pages.items() if info["problems"]}
    assert not failures, "console errors or failed requests (requests off localhost are blocked):\n" + _report(failures)


def test_every_page_has_a_favicon(wide_pages):
    failures = {p: (info["icon"], info["iconStatus"]) for p, info in wide_pages.items() if info["iconStatus"] != 200}
    assert not failures, "missing or broken <link rel=icon>:\n" + _report(failures)


def test_every_image_decodes(wide_pages):
    failures = {p: info["broken"] for p, info in wide_pages.items() if info["broken"]}
    assert not failures, "images that do not decode (naturalWidth 0):\n" + _report(failures)


def test_no_unresolved_glue_tracebacks_or_build_errors(wide_pages):
    failures = {}
    for page, info in wide_pages.items():
        found = [s for s in ("{glue", "Traceback (most recent call last)", "Glue reference") if s in info["text"]]
        failures.update({page: found + info["errors"]} if found or info["errors"] else {})
    assert not failures, "raw glue roles, tracebacks or error messages on the page:\n" + _report(failures)


def test_no_raw_widget_text_and_no_widget_state(wide_pages):
    failures = {}
    for page, info in wide_pages.items():
        found = [s for s in WIDGET_REPRS if s in info["outputs"]]
        if info["widgetScripts"]:
            found.append(f"{info['widgetScripts']} ipywidgets <script> blocks (state or views no page can show)")
        if found:
            failures[page] = found
    assert not failures, "widget output on the page (tag the cell remove-output; a static figure goes beside it):\n" + _report(failures)


def test_maths_is_typeset_offline(wide_pages):
    assert any(info["hasMaths"] for info in wide_pages.values()), "no page of the book holds maths"
    failures = {}
    for page, info in wide_pages.items():
        if info["hasMaths"] and (info["mathjax"] is None or info["typeset"] == 0):
            failures[page] = f"MathJax {'not loaded' if info['mathjax'] is None else 'typeset nothing'}"
        elif info["rawLatex"]:
            failures[page] = f"raw LaTeX on the page: {info['rawLatex'][:3]}"
    assert not failures, "maths not typeset with the network off localhost blocked:\n" + _report(failures)


def _chapter(site_pages: list[str]) -> str:
    return next(p for p in site_pages if Path(p).name[:2].isdigit())


def test_narrow_screen_sidebar_opens_from_its_toggle(context_factory, site):
    ctx = context_factory(viewport=NARROW)
    for name in (_front_page(), _chapter(_pages())):
        page = _open(ctx, site + name)
        assert page.evaluate(VISIBLE_LINKS_JS, CHAPTER_LINKS) == 0, f"{name}: chapter list already open at 400 px"
        page.locator(".primary-toggle").locator("visible=true").first.click()
        page.wait_for_timeout(500)
        assert page.evaluate(VISIBLE_LINKS_JS, CHAPTER_LINKS) > 0, f"{name}: clicking the sidebar toggle at 400 px does not show the chapter list"
        page.keyboard.press("Escape")
        page.goto(site + name)
        page.locator(".secondary-toggle").locator("visible=true").first.click()
        page.wait_for_timeout(500)
        assert page.evaluate(VISIBLE_LINKS_JS, CONTENTS_LINKS) > 0, f"{name}: clicking 'Contents' at 400 px does not show the page's contents"
        assert not page.problems, page.problems
        page.close()


def test_wide_screen_sidebar_toggle_hides_the_chapter_list(context_factory, site):
    page = _open(context_factory(viewport=WIDE), site + _chapter(_pages()))
    assert page.evaluate(VISIBLE_LINKS_JS, CHAPTER_LINKS) > 0, "chapter list not shown at 1400 px"
    page.locator(".primary-toggle").locator("visible=true").first.click()
    page.wait_for_timeout(500)
    assert page.evaluate(VISIBLE_LINKS_JS, CHAPTER_LINKS) == 0, "the sidebar toggle does not hide the chapter list at 1400 px"


def test_solution_dropdown_opens_when_clicked(context_factory, site):
    ctx = context_factory(viewport=WIDE)
    for name in _pages():
        page = _open(ctx, site + name)
        solutions = page.locator(".solution.dropdown")
        if solutions.count():
            break
        page.close()
    else:
        pytest.fail("no page has a dropdown solution")
    solution = solutions.first
    body = solution.locator(":scope > :not(.admonition-title)").first
    solution.scroll_into_view_if_needed()
    assert not body.is_visible(), f"{name}: the solution is shown before it is clicked"
    button = solution.locator(".admonition-title button")  # sphinx-togglebutton's; the title holds a link
    (button if button.count() else solution.locator(".admonition-title")).first.click()
    page.wait_for_timeout(300)
    assert body.is_visible(), f"{name}: clicking the solution's title does not open it"


def test_narrow_screen_wide_content_scrolls_and_says_so(context_factory, site):
    """At 400 px nothing widens the page; a table or code line wider than its box is marked as scrolling."""
    ctx = context_factory(viewport=NARROW)
    failures = {}
    for name in _pages():
        page = _open(ctx, site + name)
        page.evaluate("() => (window.MathJax && MathJax.startup && MathJax.startup.promise) || null")
        page.wait_for_timeout(100)
        found = page.evaluate(CUT_OFF_JS)
        if found:
            failures[name] = found
        page.close()
    assert not failures, "content cut off at 400 px:\n" + _report(failures)


def test_dark_mode_follows_the_reader(context_factory, site):
    page = _open(context_factory(viewport=WIDE, color_scheme="dark"), site + _front_page())
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert not page.problems, page.problems
