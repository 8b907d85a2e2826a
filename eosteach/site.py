"""The course website: the executed lessons as static HTML pages (Sphinx, myst-nb, sphinx-book-theme).

    python -m eosteach.site build [--out DIR]   # build the site into DIR (default: build/site)
    python -m eosteach.site check [--out DIR]   # list its external links; exit 1 on a broken internal one

``build`` renders the committed, executed lessons from their saved outputs: nothing is
executed and nothing is fetched. It stages, in a scratch folder beside DIR, the Sphinx
sources of ``docs/`` (``conf.py``, the landing page, the references), a copy of each lesson
prepared for the page (below), the instructor notes, the README's lesson table, and a local
MathJax 3 (from the ``sphinx-mathjax-offline`` package), then runs Sphinx once.

What the page copy of a lesson changes, and only there (the lessons are not edited):

* each worked solution (a cell tagged ``solution``) gets myst-nb's ``hide-input`` tag, so
  it is shown folded ("Show the worked solution"), under its "Worked solution" heading;
* each interactive demo (an ipywidgets view) is replaced by what its saved state shows: a
  note that the demo needs a running kernel, with a link that opens the lesson on Binder,
  the values its controls were saved at, and its figure (the PNG that the demo saved with
  its output, or else the image in the notebook's saved widget state). The saved widget
  state itself is dropped, so that no page loads a widget manager from a CDN.

Hints and "Think!" answers are ``<details>`` blocks in the lessons' Markdown and render
folded as they are. After the build, ``_sources/<lesson>.ipynb`` (the download button of a
lesson page) is replaced by the lesson itself, with its widget state.
"""

from __future__ import annotations

import copy
import html
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .cli import EXIT_USAGE, _Parser

ROOT = Path(__file__).resolve().parents[1]
LESSON_GLOB = "[0-9][0-9]_*.ipynb"
NOTES = "INSTRUCTOR_NOTES.md"
BINDER_URL = "https://mybinder.org/v2/gh/eosteach/eosteach/HEAD?urlpath=lab/tree/lessons/{name}"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
SOLUTION_TAG = "solution"
HIDE_INPUT_TAG = "hide-input"
SHOW_SOLUTION, HIDE_SOLUTION = "Show the worked solution", "Hide the worked solution"
TABLE_START, TABLE_END = "<!-- lessons-table -->", "<!-- /lessons-table -->"
DEFAULT_OUT = Path("build") / "site"


# ---------------------------------------------------------------------------------------
# The page copy of a lesson
# ---------------------------------------------------------------------------------------


def _widget_models(nb) -> dict:
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})


def _walk(models: dict, model_id: str, seen=None):
    """Yield the saved models of the widget ``model_id`` and of its children, depth first."""
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in models:
        return
    seen.add(model_id)
    model = models[model_id]
    yield model
    for child in model.get("state", {}).get("children", []):
        if isinstance(child, str) and child.startswith("IPY_MODEL_"):
            yield from _walk(models, child[len("IPY_MODEL_"):], seen)


def _saved_controls(models: dict, model_id: str) -> list[str]:
    """'description = value' of each control (slider, dropdown, ...) under the widget, as saved."""
    found = []
    for model in _walk(models, model_id):
        state = model.get("state", {})
        description = state.get("description")
        if description and "value" in state and model.get("model_name") not in ("HTMLModel", "LabelModel"):
            value = state["value"]
            if isinstance(value, list):
                value = "–".join(str(v) for v in value)
            found.append(f"{description} = {value}")
    return found


def _saved_images(models: dict, model_id: str) -> list[str]:
    """The base64 PNGs of the Image widgets under the widget, as saved."""
    images = []
    for model in _walk(models, model_id):
        if model.get("model_name") != "ImageModel":
            continue
        for buffer in model.get("buffers", []):
            if buffer.get("path") == ["value"] and buffer.get("encoding") == "base64":
                images.append(buffer["data"])
    return images


def _kernel_note(lesson_name: str, controls: list[str]) -> str:
    url = html.escape(BINDER_URL.format(name=lesson_name), quote=True)
    text = (
        '<div class="eosteach-kernel-note"><p><b>Interactive demo.</b> Its controls need a running '
        f'Python kernel: <a href="{url}">open this lesson on Binder</a> (or in your own Jupyter) '
        "to move them. Below, the figure as it was when the lesson was executed."
    )
    if controls:
        text += "</p><p>Saved settings:</p><ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in controls) + "</ul>"
    else:
        text += "</p>"
    return text + "</div>"


def _static_demo_outputs(output, models: dict, lesson_name: str) -> list:
    """The outputs that replace one widget output: the note, then the demo's figure(s)."""
    import nbformat

    model_id = output["data"][WIDGET_MIME].get("model_id", "")
    pngs = [output["data"]["image/png"]] if "image/png" in output["data"] else _saved_images(models, model_id)
    outputs = [nbformat.v4.new_output(
        "display_data", data={"text/html": _kernel_note(lesson_name, _saved_controls(models, model_id))})]
    for png in pngs:
        png = png if isinstance(png, str) else "".join(png)
        outputs.append(nbformat.v4.new_output(
            "display_data", data={"image/png": png, "text/plain": "<the demo's saved figure>"}))
    return outputs


def page_notebook(nb, lesson_name: str):
    """The copy of the lesson ``nb`` (an nbformat NotebookNode; not modified) that its page
    renders: solutions folded, widget views replaced by their saved figure (module docstring)."""
    nb = copy.deepcopy(nb)
    models = _widget_models(nb)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if SOLUTION_TAG in tags and HIDE_INPUT_TAG not in tags:
            cell.metadata["tags"] = [*tags, HIDE_INPUT_TAG]
            cell.metadata["mystnb"] = {"code_prompt_show": SHOW_SOLUTION, "code_prompt_hide": HIDE_SOLUTION}
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            if WIDGET_MIME in output.get("data", {}):
                outputs.extend(_static_demo_outputs(output, models, lesson_name))
            else:
                outputs.append(output)
        cell.outputs = outputs
    nb.metadata.pop("widgets", None)
    return nb


def lessons_table(readme_text: str) -> str:
    """The README's lesson table, its links pointing at the lesson pages instead of the files
    and its Binder badges as text links."""
    try:
        start = readme_text.index(TABLE_START) + len(TABLE_START)
        end = readme_text.index(TABLE_END)
    except ValueError:
        raise ValueError(f"readme_text has no {TABLE_START} ... {TABLE_END} lesson table") from None
    table = readme_text[start:end].strip().replace("](lessons/", "](")
    # The Binder badge is an image on mybinder.org; the site loads nothing from outside.
    return re.sub(r"!\[Binder\]\(https?://[^)]*\)", "launch", table) + "\n"


# ---------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------


# The parts of MathJax 3 that the pages use: the TeX-to-HTML component, its fonts, the TeX
# extensions it loads on demand, and its menu.
MATHJAX_PARTS = ("tex-chtml.js", "output/chtml", "input/tex", "ui", "a11y")


def mathjax_dir() -> Path:
    """MathJax 3, as the sphinx-mathjax-offline package ships it."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        folder = Path(distribution("sphinx-mathjax-offline").locate_file("sphinx-mathjax-offline/static/mathjax"))
    except PackageNotFoundError:
        raise RuntimeError('the site needs sphinx-mathjax-offline (pip install -e ".[site]")') from None
    if not (folder / MATHJAX_PARTS[0]).is_file():
        raise RuntimeError(f"no {MATHJAX_PARTS[0]} in {folder}: reinstall sphinx-mathjax-offline")
    return folder


def stage(staging: Path, root: Path = ROOT) -> list[str]:
    """Write the Sphinx sources of the site into ``staging`` (emptied first); return the lesson names."""
    import nbformat

    lessons = sorted((root / "lessons").glob(LESSON_GLOB))
    if not lessons:
        raise ValueError(f"root {root} has no lessons/{LESSON_GLOB}")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(root / "docs", staging, ignore=shutil.ignore_patterns("_build", "__pycache__"))
    mathjax = mathjax_dir()
    for part in MATHJAX_PARTS:
        source, dest = mathjax / part, staging / "_static" / "mathjax" / part
        if source.is_dir():
            shutil.copytree(source, dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
    shutil.copy2(root / "lessons" / NOTES, staging / NOTES)
    (staging / "_lessons_table.md").write_text(
        lessons_table((root / "README.md").read_text(encoding="utf-8")), encoding="utf-8")
    for lesson in lessons:
        try:
            nb = nbformat.read(lesson, as_version=4)
        except (ValueError, nbformat.ValidationError) as exc:  # NotJSONError is a ValueError
            raise ValueError(f"lesson {lesson}: {exc}") from None
        nbformat.write(page_notebook(nb, lesson.name), staging / lesson.name)
    return [p.name for p in lessons]


class _WarningLog:
    """Sphinx's warning stream, kept to report."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if "WARNING" in line or "ERROR" in line]


class BuildError(RuntimeError):
    """Sphinx could not build the site."""


def build(out: Path, root: Path = ROOT) -> dict:
    """Build the site into ``out`` (replaced); return the build's facts: seconds, bytes, pages,
    Sphinx warnings. Raises BuildError when Sphinx fails, RuntimeError when a package of the
    ``site`` extra is missing, ValueError when ``root`` has no lessons or a lesson is not a notebook."""
    try:
        from sphinx.application import Sphinx
        from sphinx.errors import SphinxError
    except ImportError:
        raise RuntimeError('the site needs Sphinx, myst-nb and sphinx-book-theme (pip install -e ".[site]")') from None

    out = Path(out).resolve()
    staging = out.parent / (out.name + ".src")
    start = time.perf_counter()
    names = stage(staging, root)
    if out.exists():
        shutil.rmtree(out)
    warnings = _WarningLog()
    try:
        app = Sphinx(str(staging), str(staging), str(out), str(staging / "_build" / "doctrees"), "html",
                     status=None, warning=warnings, freshenv=True)
        app.build()
    except SphinxError as exc:
        raise BuildError(f"Sphinx failed: {exc} (sources kept in {staging})") from exc
    if app.statuscode:
        raise BuildError(f"Sphinx failed with status {app.statuscode} (sources kept in {staging}):\n{warnings.text}")
    for name in names:  # the download button gives the lesson itself, widget state included
        shutil.copy2(root / "lessons" / name, out / "_sources" / name)
    shutil.rmtree(staging)
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    pages = sorted(str(p.relative_to(out)) for p in out.glob("*.html"))
    return {"seconds": seconds, "bytes": size, "pages": pages, "warnings": warnings.lines()}


# ---------------------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------------------


class _Links(HTMLParser):
    """Collect the ids and the link targets (href, src) of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key) and (key == "id" or tag == "a"):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and attrs.get("rel") in ("preconnect", "dns-prefetch")):
                self.targets.append(attrs[key])


@dataclass
class LinkReport:
    """What ``check_links`` found in a built site."""

    external: dict[str, set[str]] = field(default_factory=dict)  # URL -> the pages that link it
    broken: list[str] = field(default_factory=list)  # "page: target (why)"
    internal: int = 0  # internal links checked


def check_links(site: Path) -> LinkReport:
    """Check every internal link (href and src) of every HTML page of ``site``: the file
    must exist and, for ``page.html#anchor``, the page must have that id. External links
    (http, https, mailto) are listed, never fetched."""
    site = Path(site).resolve()
    # The theme copies its Jinja macro files (*.html templates, not pages) into _static/.
    pages = {p: _parse(p) for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts}
    report = LinkReport()
    for page, links in sorted(pages.items()):
        rel_page = str(page.relative_to(site))
        for target in links.targets:
            parts = urlsplit(target)
            if parts.scheme in ("http", "https", "mailto"):
                report.external.setdefault(target, set()).add(rel_page)
                continue
            if parts.scheme in ("data", "javascript") or target.startswith("//"):
                continue
            report.internal += 1
            path = unquote(parts.path)
            dest = page if not path else (page.parent / path).resolve()
            if dest.is_dir():
                dest = dest / "index.html"
            if site not in dest.parents and dest != site:
                report.broken.append(f"{rel_page}: {target} (outside the site)")
            elif not dest.is_file():
                report.broken.append(f"{rel_page}: {target} (no such file)")
            elif parts.fragment and dest.suffix == ".html":
                ids = pages[dest].ids if dest in pages else _parse(dest).ids
                if unquote(parts.fragment) not in ids:
                    report.broken.append(f"{rel_page}: {target} (no id {parts.fragment!r} in {dest.name})")
    return report


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    return parser


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = _Parser(
        prog="python -m eosteach.site",
        description="Build the course website from the executed lessons, or check its links.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("build", "build the site (the lessons are not executed)"),
                       ("check", "list the external links (not fetched); exit 1 on a broken internal link")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the site folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    if args.command == "build":
        try:
            facts = build(args.out)
        except BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except (RuntimeError, ValueError, OSError) as exc:  # a missing package, no lessons, a broken notebook
            print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
            return EXIT_USAGE
        for line in facts["warnings"]:
            print(line, file=sys.stderr)
        print(f"site built in {facts['seconds']:.1f} s: {len(facts['pages'])} pages, "
              f"{facts['bytes'] / 1e6:.1f} MB in {args.out} (open {args.out / 'index.html'})")
        return 0

    if not (args.out / "index.html").is_file():
        print(f"error: --out {args.out} holds no built site; run `python -m eosteach.site build` first",
              file=sys.stderr)
        return EXIT_USAGE
    report = check_links(args.out)
    for url in sorted(report.external):
        print(f"external: {url}  ({', '.join(sorted(report.external[url]))})")
    for line in report.broken:
        print(f"broken: {line}", file=sys.stderr)
    print(f"{report.internal} internal links checked, {len(report.broken)} broken; "
          f"{len(report.external)} external links listed, not fetched")
    return 1 if report.broken else 0


if __name__ == "__main__":
    sys.exit(main())
