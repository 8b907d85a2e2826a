"""Every lesson in a real browser: JupyterLab 4 + ipywidgets 8 driven by headless Chromium.

What a learner does, checked end to end on a temporary copy of ``lessons/``:

1. JupyterLab starts on 127.0.0.1 (a free port, no token), with ``EOSTEACH_FAST=1``;
2. each lesson is opened, its kernel reaches "idle", its outputs are cleared and
   Run > Run All Cells is clicked in the menu bar;
3. when every code cell has run, the page must hold no error output (a traceback, an
   exception, a warning) and no widget left at "Loading widget..." or "Error displaying widget";
4. in lessons with widgets, one slider is moved with the keyboard (ArrowRight) and the
   picture (or the text output) beside it must change.

Screenshots go to ``test-artifacts/browser/`` (or ``$EOSTEACH_ARTIFACTS/browser``): the
page after Run All, and the widget before and after the slider moved.

Playwright drives Debian's ``chromium`` (``executable_path``), so no browser is downloaded.
Without chromium (or Playwright) the browser tests skip with the reason, except in CI
(``CI=true``), where they fail. Two self-tests on scratch notebooks prove that the harness
sees a moved slider and a traceback, so a silently blind harness cannot pass.

The module also holds the widget-stack compatibility checks (ipywidgets 8 with
jupyterlab_widgets in JupyterLab 4); those need no browser.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
ARTIFACTS = Path(os.environ.get("EOSTEACH_ARTIFACTS", ROOT / "test-artifacts")) / "browser"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_ALL_TIMEOUT_S = 900  # one lesson, fast scale; a hung kernel fails here, not in CI's global limit
SLIDER_TIMEOUT_S = 30

# Text in an error/stderr output that means something went wrong. tqdm progress bars also
# write to stderr, so stderr alone is not an error.
ERROR_PATTERN = re.compile(r"Traceback|\b\w*(Error|Exception)\b|\w+Warning\b")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _require_browser():
    """Skip (outside CI) or fail (in CI) when chromium or Playwright is missing."""
    missing = []
    if chromium_path() is None:
        missing.append("Debian's chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if _in_ci():
            pytest.fail(message + "; CI must run the browser test")
        pytest.skip(message)


# ---------------------------------------------------------------------------------------
# JupyterLab server on a temporary copy of the lessons
# ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_settings(settings_dir: Path) -> None:
    """User settings for the test server: every cell in the DOM (no virtual scrolling, so
    that every output can be inspected), no news or update pop-ups over the page."""
    files = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "checkForUpdates": False,
            "fetchNews": "false",
        },
    }
    for rel, value in files.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


class LabServer:
    def __init__(self, root_dir: Path, work: Path):
        self.root_dir = root_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = work / "lab-settings"
        _lab_settings(settings)
        env = dict(os.environ)
        env.update(
            EOSTEACH_FAST=os.environ.get("EOSTEACH_FAST", "1"),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(work / "lab-workspaces"),
            JUPYTER_RUNTIME_DIR=str(work / "runtime"),
            # The kernel imports the eosteach of this checkout, installed or not.
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        )
        self.log = open(work / "jupyterlab.log", "w")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "jupyterlab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                "--IdentityProvider.token=",
                "--ServerApp.password=",
                f"--ServerApp.root_dir={root_dir}",
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.news_url=",
                "--LabApp.extension_manager=readonly",  # no PyPI look-ups from the test
                "--ServerApp.allow_root=True",  # CI containers run as root
                "--ServerApp.disable_check_xsrf=True",  # lets the test shut kernels down over REST
            ],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=root_dir,
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/api/status", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer on {self.url} within 120 s; see {self.log.name}")

    def api(self, method: str, path: str):
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Free the CPU and memory of the lesson just tested before the next one starts."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def _scratch_notebook(cells) -> dict:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    return nb


SELFTEST_WIDGET = "zz_selftest_widget.ipynb"
SELFTEST_ERROR = "zz_selftest_error.ipynb"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _require_browser()
    import nbformat

    work = tmp_path_factory.mktemp("browser")
    root_dir = work / "lessons"
    # A temporary copy, so that running the lessons never touches the committed files.
    shutil.copytree(ROOT / "lessons", root_dir, ignore=shutil.ignore_patterns("student", ".ipynb_checkpoints"))
    nbformat.write(
        _scratch_notebook(
            [
                "import ipywidgets as widgets\nfrom eosteach.widgets.base import FigureView\n"
                "import numpy as np",
                "view = FigureView(figsize=(5, 3))\nx = np.linspace(0, 1, 50)\n"
                "(line,) = view.axes[0].plot(x, x)\nview.axes[0].set_ylim(0, 10)\n"
                "slider = widgets.FloatSlider(value=1.0, min=0.0, max=10.0, step=0.5, description='slope')\n"
                "def redraw(change=None):\n    line.set_ydata(slider.value * x)\n    view.refresh()\n"
                "slider.observe(redraw, 'value')\nredraw()\n"
                # A first slider whose observer changes nothing: the harness must pass it over.
                "dud = widgets.IntSlider(description='no effect')\ndud.observe(lambda change: None, 'value')\n"
                "widgets.VBox([dud, slider, view.image])",
            ]
        ),
        root_dir / SELFTEST_WIDGET,
    )
    nbformat.write(
        _scratch_notebook(["print('fine so far')", "1 / 0", "print('never reached')"]),
        root_dir / SELFTEST_ERROR,
    )
    server = LabServer(root_dir, work)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(lab):
    """One Chromium and one browser context for the module: the pages share the HTTP cache,
    so JupyterLab's bundles are parsed from cache after the first lesson."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        context = b.new_context(viewport={"width": 1400, "height": 1000})
        yield context
        context.close()
        b.close()


# ---------------------------------------------------------------------------------------
# Driving one notebook
# ---------------------------------------------------------------------------------------

# JavaScript run in the page; ``window.jupyterapp`` exists because of expose_app_in_browser.
JS_KERNEL_STATUS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const s = w && w.sessionContext;
  return s && s.session && s.session.kernel ? s.session.kernel.status : null;
}"""
# [execution count, execution state] of every code cell, from the notebook's model: a
# collapsed (source_hidden) solution cell shows no prompt in the page but still runs.
JS_CELLS = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .filter(cell => cell.model.type === 'code')
  .map(cell => [cell.model.executionCount, cell.model.executionState])"""
JS_PROBLEMS = r"""() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const out = [];
  panel.querySelectorAll('.jp-OutputArea-output').forEach(el => {
    const mime = el.getAttribute('data-mime-type') || '';
    const text = el.innerText || '';
    if (mime === 'application/vnd.jupyter.stderr' || el.classList.contains('jp-mod-error')
        || el.closest('.jp-OutputArea-child.jp-mod-error'))
      out.push({kind: 'stderr', text: text.slice(0, 3000)});
    if (/Loading widget\.\.\.|Error displaying widget/.test(text))
      out.push({kind: 'widget', text: text.slice(0, 300)});
  });
  return out;
}"""


class LessonPage:
    def __init__(self, page, lab: LabServer, name: str):
        self.page, self.lab, self.name = page, lab, name
        self.stem = Path(name).stem

    def shot(self, suffix: str, locator=None) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.stem}_{suffix}.png"
        (locator or self.page).screenshot(path=str(path))
        return path

    def open(self) -> None:
        self.page.goto(f"{self.lab.url}/lab/tree/{self.name}?reset", wait_until="domcontentloaded")
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
        self.page.wait_for_function(f"() => ({JS_KERNEL_STATUS})() === 'idle'", timeout=120_000)

    def menu(self, menu: str, item: str) -> None:
        """Click ``menu`` in the menu bar, then ``item`` in it (as a learner would)."""
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{menu}$")).click()
        self.page.locator(".lm-Menu-item:visible", has_text=re.compile(rf"^{re.escape(item)}")).first.click()

    def run_all(self) -> None:
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        self.menu("Run", "Run All Cells")
        # Done when no cell is queued or running ([*]) and the kernel is idle, for 2 s:
        # a cell that raises stops Run All, which leaves later cells at [ ].
        deadline = time.time() + RUN_ALL_TIMEOUT_S
        quiet_since = None
        while time.time() < deadline:
            cells = self.page.evaluate(JS_CELLS)
            busy = any(state == "running" for _, state in cells) or self.page.evaluate(JS_KERNEL_STATUS) != "idle"
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.time()
            elif time.time() - quiet_since > 2.0:
                return
            time.sleep(0.5)
        self.shot("timeout")
        raise AssertionError(f"{self.name}: Run All did not finish within {RUN_ALL_TIMEOUT_S} s")

    def problems(self) -> list[str]:
        found = []
        for p in self.page.evaluate(JS_PROBLEMS):
            if p["kind"] == "widget" or ERROR_PATTERN.search(p["text"]):
                found.append(p["text"])
        return found

    def unexecuted_cells(self) -> int:
        return sum(1 for count, _ in self.page.evaluate(JS_CELLS) if count is None)

    def move_a_slider(self) -> Path | None:
        """Press ArrowRight on sliders, in order, until the output beside one changes.

        Returns the screenshot of the widget after the move, None when the lesson has no
        slider. The output's signature is its images' sources (FigureView swaps in a new
        PNG when it re-renders) and the text of its output/HTML widgets, not the slider's
        own read-out.
        """
        handles = self.page.locator(
            ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-slider .noUi-target:not([disabled]) .noUi-handle"
        ).filter(visible=True)  # not those in a closed accordion or tab
        count = handles.count()
        if count == 0:
            return None
        signature_js = """(el) => {
          const area = el.closest('.jp-OutputArea-output');
          const imgs = Array.from(area.querySelectorAll('img')).map(i => i.src);
          const texts = Array.from(area.querySelectorAll('.widget-output, .widget-html-content'))
                             .map(e => e.innerText);
          return JSON.stringify({imgs, texts});
        }"""
        # Count the kernel's busy periods: a slider whose observer ran (busy, then idle)
        # without changing the output is passed over at once instead of after a timeout.
        self.page.evaluate(JS_COUNT_BUSY)
        tried = []
        for i in range(min(count, 8)):
            handle = handles.nth(i)
            handle.scroll_into_view_if_needed()
            area = handle.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-output')][1]")
            before = handle.evaluate(signature_js)
            self.shot("slider_before", area)
            busy_before = self.page.evaluate("() => window.__eosteachBusy")
            position = handle.get_attribute("aria-valuenow")
            handle.focus()
            for key in ("ArrowRight", "ArrowLeft"):  # ArrowLeft when the slider sits at its maximum
                for _ in range(3):
                    self.page.keyboard.press(key)
                if handle.get_attribute("aria-valuenow") != position:
                    break
            deadline = time.time() + SLIDER_TIMEOUT_S
            while time.time() < deadline:
                time.sleep(0.5)
                idle = self.page.evaluate(JS_KERNEL_STATUS) == "idle"
                if idle and handle.evaluate(signature_js) != before:
                    time.sleep(0.5)  # let the new image paint before the screenshot
                    return self.shot("slider_moved", area)
                if idle and self.page.evaluate("() => window.__eosteachBusy") > busy_before:
                    time.sleep(1.0)  # the observer ran; give the front end a moment to update
                    if handle.evaluate(signature_js) != before:
                        return self.shot("slider_moved", area)
                    break
            tried.append(i)
        raise AssertionError(f"{self.name}: moving sliders {tried} with the keyboard changed no output beside them")


JS_COUNT_BUSY = """() => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  window.__eosteachBusy = 0;
  kernel.statusChanged.connect((_, status) => { if (status === 'busy') window.__eosteachBusy += 1; });
}"""
JS_WIDGET_PLUGINS = """() => window.jupyterapp.listPlugins()
  .filter(id => id.startsWith('@jupyter-widgets/'))
  .map(id => [id, window.jupyterapp.isPluginActivated(id)])"""


def drive(context, lab: LabServer, name: str) -> dict:
    """Open ``name``, run all cells, move a slider; return what was seen."""
    page = context.new_page()
    console_errors = []
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))
    lesson = LessonPage(page, lab, name)
    t0 = time.time()
    try:
        lesson.open()
        t_open = time.time()
        lesson.run_all()
        result = {
            "open_s": t_open - t0,
            "run_s": time.time() - t_open,
            "widget_plugins": dict(page.evaluate(JS_WIDGET_PLUGINS)),
            "problems": lesson.problems(),
            "unexecuted": lesson.unexecuted_cells(),
            "n_cells": len(page.evaluate(JS_CELLS)),
        }
        lesson.shot("after_run_all")
        result["slider_shot"] = None if result["problems"] else lesson.move_a_slider()
        result["page_errors"] = console_errors
        result["total_s"] = time.time() - t0
        # What was seen, beside the screenshots: CI keeps it when a lesson fails.
        (ARTIFACTS / f"{lesson.stem}_result.json").write_text(json.dumps(result, indent=1, default=str))
        return result
    except Exception:
        lesson.shot("failure")
        raise
    finally:
        page.close()
        lab.shutdown_kernels()


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------


@pytest.mark.browser
def test_harness_sees_a_moved_slider(browser, lab):
    seen = drive(browser, lab, SELFTEST_WIDGET)
    assert seen["problems"] == [] and seen["unexecuted"] == 0, seen
    assert seen["slider_shot"] is not None and seen["slider_shot"].is_file()
    # ipywidgets 8's JupyterLab 4 front end (jupyterlab_widgets) is loaded and active in the page.
    plugins = seen["widget_plugins"]
    assert plugins.get("@jupyter-widgets/jupyterlab-manager:plugin") is True, plugins
    assert any(k.endswith("controls-2.0.0") and v for k, v in plugins.items()), plugins


@pytest.mark.browser
def test_harness_sees_a_traceback(browser, lab):
    seen = drive(browser, lab, SELFTEST_ERROR)
    assert any("ZeroDivisionError" in p for p in seen["problems"]), seen
    assert seen["unexecuted"] == 1, "Run All must stop at the failing cell"


def _has_widgets(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return "ipywidgets" in text or "eosteach.widgets" in text


@pytest.mark.browser
@pytest.mark.timeout(RUN_ALL_TIMEOUT_S + 300)
@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_jupyterlab(browser, lab, lesson):
    seen = drive(browser, lab, lesson.name)
    print(
        f"{lesson.name}: {seen['n_cells']} code cells; open + kernel idle {seen['open_s']:.1f} s, "
        f"run all {seen['run_s']:.1f} s, total {seen['total_s']:.1f} s"
    )
    assert not seen["problems"], f"{lesson.name}: error or unrendered widget output in the page:\n" + "\n---\n".join(
        seen["problems"]
    )
    assert seen["unexecuted"] == 0, f"{lesson.name}: {seen['unexecuted']} code cells did not run"
    assert not seen["page_errors"], f"{lesson.name}: JavaScript errors in the page: {seen['page_errors']}"
    if _has_widgets(lesson):
        assert seen["slider_shot"] is not None, f"{lesson.name} uses widgets but shows no slider to move"


# ---------------------------------------------------------------------------------------
# Widget stack compatibility: ipywidgets 8 + jupyterlab_widgets in JupyterLab 4 (no browser)
# ---------------------------------------------------------------------------------------


def _major(version: str) -> int:
    return int(re.match(r"\d+", version).group())


def test_widget_stack_versions():
    import ipywidgets
    import jupyterlab
    import jupyterlab_widgets

    assert _major(ipywidgets.__version__) == 8, ipywidgets.__version__
    assert _major(jupyterlab.__version__) == 4, jupyterlab.__version__
    # jupyterlab_widgets 3.x is the JupyterLab side of ipywidgets 8 (2.x served ipywidgets 7).
    assert _major(jupyterlab_widgets.__version__) == 3, jupyterlab_widgets.__version__


def test_widget_manager_extension_enabled_in_jupyterlab():
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True, text=True, timeout=120,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)  # drop colour codes
    line = next((ln for ln in text.splitlines() if "@jupyter-widgets/jupyterlab-manager" in ln), None)
    assert line is not None, f"jupyterlab-manager not installed:\n{text}"
    assert "enabled" in line and "OK" in line, line
    # Manager 5.x renders the ipywidgets 8 protocol (widget model version 2).
    version = re.search(r"v(\d+)\.\d+\.\d+", line)
    assert version and int(version.group(1)) == 5, line


def test_widget_protocol_matches_the_frontend():
    import ipywidgets

    # ipywidgets 8 speaks widget protocol 2.x; the 5.x manager above implements it.
    assert ipywidgets._version.__protocol_version__.startswith("2."), ipywidgets._version.__protocol_version__
    slider = ipywidgets.FloatSlider()
    assert slider._model_module == "@jupyter-widgets/controls"
    assert slider._model_module_version.startswith("2."), slider._model_module_version
