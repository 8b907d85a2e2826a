"""Binder: the ``binder/`` folder builds the image the lessons need.

``repo2docker --no-build --debug`` (offline, no Docker) prints the Dockerfile that
mybinder.org would build from this repository; the test asserts that it uses Python 3.11,
installs ``binder/requirements.txt`` (with a CPU-only torch) and then runs ``postBuild``,
which installs the package. Static checks keep ``binder/`` free of local paths and in step
with the package's dependencies, and the README's badges open each lesson in JupyterLab.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
BINDER_REPO = "eosteach/eosteach"  # placeholder GitHub org/repo used by every badge in the README
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def dockerfile() -> str:
    exe = shutil.which("repo2docker") or str(Path(sys.executable).with_name("repo2docker"))
    if not os.access(exe, os.X_OK):
        message = "repo2docker is not installed (pip install jupyter-repo2docker, in the test extras)"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    proc = subprocess.run(
        [exe, "--no-build", "--debug", str(ROOT)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FROM " in proc.stdout, proc.stdout[-3000:]
    return proc.stdout + "\n" + proc.stderr


def _run_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("RUN ")]


def test_image_uses_python_3_11(dockerfile):
    # repo2docker picks the conda lock file of the requested Python (environment.py-3.11-...).
    assert re.search(r"py-3\.11\b|python=3\.11\b", dockerfile), "repo2docker did not pick Python 3.11"
    assert not re.search(r"py-3\.(?!11\b)\d+|python=3\.(?!11\b)\d+", dockerfile)


def test_image_installs_requirements_then_runs_postbuild(dockerfile):
    runs = _run_lines(dockerfile)
    pip = [i for i, ln in enumerate(runs) if re.search(r"pip install .*-r \"?binder/requirements\.txt", ln)]
    post = [i for i, ln in enumerate(runs) if ln.endswith("binder/postBuild")]
    assert pip, "binder/requirements.txt is not installed:\n" + "\n".join(runs)
    assert post, "binder/postBuild is not run:\n" + "\n".join(runs)
    assert pip[0] < post[0], "postBuild must run after the requirements are installed"


def _requirements() -> list[str]:
    return [ln.strip() for ln in (BINDER / "requirements.txt").read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def test_requirements_pin_a_cpu_only_torch():
    lines = _requirements()
    index = [ln for ln in lines if ln.startswith(("--index-url", "--extra-index-url"))]
    assert any("download.pytorch.org/whl/cpu" in ln for ln in index), "the CPU wheel index of PyTorch is missing"
    torch = [ln for ln in lines if re.match(r"torch\b", ln)]
    assert len(torch) == 1 and re.fullmatch(r"torch==[\d.]+\+cpu", torch[0]), torch


def test_requirements_cover_the_package_dependencies():
    """postBuild installs the package with --no-deps, so requirements.txt must list them all."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group().lower().replace("_", "-") for d in deps}
    listed = {re.match(r"[A-Za-z0-9_.-]+", ln).group().lower().replace("_", "-") for ln in _requirements() if not ln.startswith("-")}
    assert names <= listed, f"missing from binder/requirements.txt: {sorted(names - listed)}"


def test_postbuild_installs_the_package():
    text = (BINDER / "postBuild").read_text()
    assert text.startswith("#!"), "postBuild needs a shebang"
    assert re.search(r"pip install .*\s\.\s*$", text, re.M), "postBuild must `pip install .`"
    assert "set -e" in text, "a failing step must fail the build"


def test_runtime_is_python_3_11():
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"


# Folders that only exist on someone's machine (POSIX roots, or a Windows drive).
LOCAL_PATH = r"(?:/(?:%s)/|[A-Z]:\\\\)\S*" % "|".join(["work", "root", "home", "tmp", "Users"])


def test_binder_files_hold_no_local_paths():
    for path in BINDER.iterdir():
        text = path.read_text()
        hits = re.findall(LOCAL_PATH, text)
        assert not hits, f"{path.name} refers to local paths: {hits}"


def test_readme_badges_open_each_lesson_in_jupyterlab():
    readme = (ROOT / "README.md").read_text()
    urls = re.findall(r"https://mybinder\.org/v2/gh/[^)\s]+", readme)
    assert urls, "the README has no Binder badge"
    for url in urls:
        assert url.startswith(f"https://mybinder.org/v2/gh/{BINDER_REPO}/HEAD"), url
    for lesson in LESSONS:
        want = f"https://mybinder.org/v2/gh/{BINDER_REPO}/HEAD?urlpath=lab/tree/lessons/{lesson.name}"
        assert want in urls, f"no Binder badge opens {lesson.name} in JupyterLab"
