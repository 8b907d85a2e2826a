"""The course website (``python -m eosteach.site``), built and then read in headless Chromium.

The site is built once for the module into a temporary folder, from the committed lessons
(not executed), and served on 127.0.0.1. Then:

1. the build's own facts: a page per lesson, the landing page, the instructor notes, the
   references and the search page; no Sphinx warning; the build time and the site's size
   are written to ``test-artifacts/site/build.json`` (or ``$EOSTEACH_ARTIFACTS/site``);
2. ``check``: every internal link resolves (file and anchor); external links are listed;
3. each page opened in Chromium, with every request outside 127.0.0.1 refused (the site
   must work offline): no console error, no request that failed, every math element
   typeset by MathJax, every image loaded (and each lesson page shows figures);
4. the search page finds "edge of stability";
5. on lesson 1: the worked solutions, the hints and the "Think!" answers are folded until
   clicked; the interactive demo shows its saved figure, the note that it needs a kernel
   and the Binder link of the lesson; every lesson page links Binder and the download.

Screenshots of the landing page and of lesson 1 (as loaded, and with a "Think!" answer
unfolded) go to ``test-artifacts/site/``. Without
Sphinx (and the theme, myst-nb, sphinx-mathjax-offline), chromium or Playwright the tests
skip with the reason, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest

from eosteach import site

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob(site.LESSON_GLOB))
ARTIFACTS = Path(os.environ.get("EOSTEACH_ARTIFACTS", ROOT / "test-artifacts")) / "site"
SITE_PACKAGES = ("sphinx", "myst_nb", "sphinx_book_theme")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _missing(what: str) -> None:
    if _in_ci():
        pytest.fail(f"the site test needs {what}; CI must build and check the site")
    pytest.skip(f"the site test needs {what}")


def _require_site_packages() -> None:
    missing = [name for name in SITE_PACKAGES if importlib.util.find_spec(name) is None]
    try:
        site.mathjax_dir()
    except RuntimeError:
        missing.append("sphinx-mathjax-offline")
    if missing:
        _missing(", ".join(missing) + ' (pip install -e ".[site]")')


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if path is None:
        _missing("Debian's chromium (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        _missing("playwright (pip install playwright)")
    return path


# --- the page copy of a lesson (no Sphinx needed) -------------------------------------------


def _scratch_lesson():
    """A lesson with a solution cell and a widget demo whose saved state holds an image and a slider."""
    nb = nbformat.v4.new_notebook()
    stub = nbformat.v4.new_code_cell("def f():\n    raise NotImplementedError('return 1')", metadata={"tags": ["exercise"]})
    solution = nbformat.v4.new_code_cell("def f():\n    return 1", metadata={"tags": ["solution"]})
    demo = nbformat.v4.new_code_cell("demo()")
    demo.outputs = [nbformat.v4.new_output("execute_result", execution_count=1, data={
        site.WIDGET_MIME: {"model_id": "box", "version_major": 2, "version_minor": 0},
        "text/plain": "VBox(...)"})]
    nb.cells = [stub, solution, demo]
    nb.metadata["widgets"] = {site.WIDGET_STATE_MIME: {"version_major": 2, "version_minor": 0, "state": {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_slider", "IPY_MODEL_image"]}},
        "slider": {"model_name": "FloatSliderModel", "state": {"description": "step size", "value": 0.15}},
        "image": {"model_name": "ImageModel", "state": {"format": "png"},
                  "buffers": [{"path": ["value"], "encoding": "base64", "data": "iVBORw0KGgo="}]},
    }}}
    return nb


def test_page_copy_folds_solutions_and_shows_the_saved_demo():
    nb = _scratch_lesson()
    page = site.page_notebook(nb, "01_scratch.ipynb")
    assert page.cells[1].metadata["tags"] == ["solution", "hide-input"]
    assert page.cells[1].metadata["mystnb"]["code_prompt_show"] == site.SHOW_SOLUTION
    assert page.cells[0].metadata["tags"] == ["exercise"]
    note, figure = page.cells[2].outputs
    assert "01_scratch.ipynb" in note["data"]["text/html"] and "mybinder.org" in note["data"]["text/html"]
    assert "step size = 0.15" in note["data"]["text/html"]
    assert figure["data"]["image/png"] == "iVBORw0KGgo="
    assert "widgets" not in page.metadata
    assert "widgets" in nb.metadata and nb.cells[1].metadata["tags"] == ["solution"], "the lesson is not modified"


def test_page_copy_prefers_the_png_saved_with_the_output():
    nb = _scratch_lesson()
    nb.cells[2].outputs[0]["data"]["image/png"] = "U0FWRUQ="
    figures = [o for o in site.page_notebook(nb, "x.ipynb").cells[2].outputs if "image/png" in o["data"]]
    assert [f["data"]["image/png"] for f in figures] == ["U0FWRUQ="]


def test_lessons_table_links_the_pages():
    table = site.lessons_table((ROOT / "README.md").read_text(encoding="utf-8"))
    for lesson in LESSONS:
        assert f"]({lesson.name})" in table
    with pytest.raises(ValueError, match="readme_text"):
        site.lessons_table("no table here")


def test_cli_check_without_a_site_exits_2(tmp_path, capsys):
    assert site.main(["check", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err


# --- the built site ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    _require_site_packages()
    out = tmp_path_factory.mktemp("site") / "site"
    facts = site.build(out)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "build.json").write_text(json.dumps(
        {"seconds": round(facts["seconds"], 1), "megabytes": round(facts["bytes"] / 1e6, 1),
         "pages": facts["pages"], "warnings": facts["warnings"]}, indent=1))
    return out, facts


def test_build_has_every_page_and_no_warning(built):
    out, facts = built
    expected = {"index.html", "INSTRUCTOR_NOTES.html", "references.html", "search.html"}
    expected |= {lesson.with_suffix(".html").name for lesson in LESSONS}
    assert expected <= set(facts["pages"])
    assert not facts["warnings"], "\n".join(facts["warnings"])
    for lesson in LESSONS:  # the download button gives the lesson itself
        assert (out / "_sources" / lesson.name).read_bytes() == lesson.read_bytes()


def test_check_finds_no_broken_internal_link(built, capsys):
    out, _ = built
    report = site.check_links(out)
    assert report.internal > 100
    assert not report.broken, "\n".join(report.broken)
    assert any("mybinder.org" in url for url in report.external)
    assert site.main(["check", "--out", str(out)]) == 0
    assert "external: https://arxiv.org/abs/2103.00065" in capsys.readouterr().out


def test_check_reports_a_broken_link(built, tmp_path):
    out, _ = built
    copy = tmp_path / "site"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("_static", "_images", "_sources"))
    page = copy / "references.html"
    page.write_text(page.read_text(encoding="utf-8").replace(
        "</main>", '<a href="nowhere.html">x</a><a href="index.html#no-such-id">y</a></main>', 1), encoding="utf-8")
    broken = [b for b in site.check_links(copy).broken if b.startswith("references.html")]
    assert any("nowhere.html (no such file)" in b for b in broken)
    assert any("no-such-id" in b for b in broken)


def test_every_lesson_page_links_binder_and_the_download(built):
    out, _ = built
    for lesson in LESSONS:
        text = (out / lesson.with_suffix(".html").name).read_text(encoding="utf-8")
        assert site.BINDER_URL.format(name=lesson.name) in text.replace("&amp;", "&"), lesson.name
        assert f'href="_sources/{lesson.name}"' in text, lesson.name


# --- in the browser --------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(built):
    out, _ = built
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(served):
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        context = b.new_context(viewport={"width": 1400, "height": 1000})
        yield context
        context.close()
        b.close()


class Visit:
    """One page opened offline: what went wrong (console errors, failed or outside requests)."""

    def __init__(self, context, base: str, path: str):
        self.page = context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}"))
        self.page.route("**/*", self._offline)
        self.page.goto(f"{base}/{path}", wait_until="load")

    def _offline(self, route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.problems.append(f"outside request: {route.request.url}")
            route.abort()

    def wait_for_math(self) -> dict:
        """Wait until MathJax has typeset the page (when it has math); return the counts: Sphinx's
        math elements, those holding MathJax's output, MathJax's error elements."""
        counts = """() => {
          const math = [...document.querySelectorAll('.math.notranslate')];
          return {math: math.length, typeset: math.filter(el => el.querySelector('mjx-container')).length,
                  errors: document.querySelectorAll('mjx-merror').length};
        }"""
        if self.page.evaluate(counts)["math"]:
            self.page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                        timeout=60_000)
            self.page.evaluate("() => MathJax.startup.promise")
        return self.page.evaluate(counts)

    def images(self) -> list[dict]:
        self.page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
        return self.page.evaluate(
            "() => [...document.images].map(i => ({src: i.getAttribute('src'), width: i.naturalWidth}))")


PAGES = ["index.html", "INSTRUCTOR_NOTES.html", "references.html", *(p.with_suffix(".html").name for p in LESSONS)]


@pytest.mark.browser
@pytest.mark.parametrize("path", PAGES)
def test_page_loads_offline_with_math_and_figures(browser, served, path):
    visit = Visit(browser, served, path)
    try:
        math = visit.wait_for_math()
        images = visit.images()
        if path == "index.html":
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            visit.page.screenshot(path=str(ARTIFACTS / "landing_page.png"))
    finally:
        visit.page.close()
    assert not visit.problems, "\n".join(visit.problems)
    assert math["typeset"] == math["math"] and math["errors"] == 0, math
    if path != "INSTRUCTOR_NOTES.html":
        assert math["math"] > 0, f"{path}: no math found: {math}"
    assert all(i["width"] > 0 for i in images), [i["src"] for i in images if i["width"] == 0]
    if path.startswith(tuple(f"{n:02d}_" for n in range(1, 100))):
        figures = [i for i in images if "_images/" in (i["src"] or "")]
        assert figures, f"{path}: a lesson page must show its figures"


@pytest.mark.browser
def test_search_finds_edge_of_stability(browser, served):
    visit = Visit(browser, served, "search.html?q=edge+of+stability")
    try:
        # Sphinx lists the hits one by one and then writes its summary ("Search finished, found N
        # pages ..."): wait for the summary, so that every hit is there, not only the first few
        visit.page.wait_for_function("() => document.querySelectorAll('#search-results li').length > 0 && "
                                     "/found/i.test(document.querySelector('#search-results .search-summary')"
                                     "?.innerText || '')", timeout=60_000)
        hits = visit.page.evaluate("() => [...document.querySelectorAll('#search-results li a')]"
                                   ".map(a => a.getAttribute('href'))")
    finally:
        visit.page.close()
    assert not visit.problems, "\n".join(visit.problems)
    assert any(h.startswith("04_edge_of_stability.html") for h in hits), hits


@pytest.mark.browser
def test_lesson_folds_solutions_hints_and_answers(browser, served):
    visit = Visit(browser, served, "01_descent_lemma.html")
    page = visit.page
    try:
        visit.wait_for_math()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "lesson_page.png"))
        solution = page.locator("details.hide", has_text=site.SHOW_SOLUTION).first
        hint = page.locator("details", has_text="Hint 1").first
        answer = page.locator("details", has_text="Answer (click to expand)").first
        folded = [page.get_by_text("thetas.append").first, hint.locator("p").first,
                  answer.get_by_text("Not at the first step").first]
        assert [el.is_visible() for el in folded] == [False, False, False], "folded until clicked"
        for details in (solution, hint, answer):
            details.locator("summary").first.click()
        assert [el.is_visible() for el in folded] == [True, True, True], "a click unfolds each one"

        note = page.locator(".eosteach-kernel-note").first
        assert "need a running Python kernel" in note.inner_text()
        binder = note.locator("a").first.get_attribute("href")
        assert binder == site.BINDER_URL.format(name="01_descent_lemma.ipynb")
        figure = page.locator(".eosteach-kernel-note ~ img, .cell_output:has(.eosteach-kernel-note) img").first
        assert figure.evaluate("img => img.naturalWidth") > 0, "the demo's saved figure is shown"
        page.screenshot(path=str(ARTIFACTS / "lesson_page_unfolded.png"))  # the last answer opened
    finally:
        page.close()
    assert not visit.problems, "\n".join(visit.problems)
