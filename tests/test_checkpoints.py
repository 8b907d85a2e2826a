"""Runs that never lose work: checkpoints on by default in a run folder, SIGTERM / SIGINT
ending a run as "interrupted", SIGKILL costing at most the steps since the last checkpoint,
and checkpoints that can not run code when loaded.

The kill tests use real subprocesses of ``eosteach run``; their resumed metrics must equal
an uninterrupted run's bit for bit (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from eosteach import runs

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--data", "synthetic", "--n-train", "200", "--width", "32", "--device", "cpu", "--lr", "0.05",
        "--eig-every", "20", "--steps", "600", "--no-progress"]


def tiny(**changes):
    base = dict(data="synthetic", n_train=60, width=8, steps=30, eig_every=10, device="cpu", lr=0.05)
    return runs.RunConfig(**{**base, **changes})


def test_checkpoints_are_on_by_default_in_a_run_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "CHECKPOINT_STEPS", 7)
    seen = {}

    def peek(info):
        if info["step"] == 20:  # mid-run: the folder already holds the records so far
            seen["steps"] = len(runs.load_run(tmp_path).metrics["step"])

    run = runs.train(tiny(), out=tmp_path, progress=False, callback=peek)
    assert run.status == "finished" and (tmp_path / runs.CHECKPOINT).is_file()
    assert seen["steps"] == 14  # written at the checkpoint of step 14
    assert runs.load_checkpoint(tmp_path / runs.CHECKPOINT)["step"] == 28


def test_checkpoint_every_0_turns_them_off_and_in_memory_runs_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "CHECKPOINT_STEPS", 7)
    runs.train(tiny(checkpoint_every=0), out=tmp_path, progress=False)
    assert not (tmp_path / runs.CHECKPOINT).exists()
    with pytest.raises(ValueError, match="checkpoint_every must be an integer >= 0"):
        tiny(checkpoint_every=-1)


def test_the_time_rule_checkpoints_a_slow_run(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "CHECKPOINT_SECONDS", 0.0)  # every step is "a minute later"
    runs.train(tiny(steps=5), out=tmp_path, progress=False)
    assert runs.load_checkpoint(tmp_path / runs.CHECKPOINT)["step"] == 4


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    run = runs.train(tiny(checkpoint_every=10), out=tmp_path, progress=False)
    info = json.loads((tmp_path / runs.RUN_JSON).read_text())
    info["status"] = "interrupted"
    (tmp_path / runs.RUN_JSON).write_text(json.dumps(info))
    marker = tmp_path / "pwned"
    torch.save({"step": 10, "params": _Evil(marker)}, tmp_path / runs.CHECKPOINT)
    with pytest.raises(ValueError, match="not a plain checkpoint"):
        runs.resume(tmp_path, progress=False)
    assert not marker.exists(), "loading the checkpoint ran its code"
    torch.save({"final": _Evil(marker)}, tmp_path / runs.FINAL)
    with pytest.raises(ValueError, match="not a plain checkpoint"):
        runs.load_run(tmp_path).final_params()
    assert not marker.exists() and run.status == "finished"

    proc = subprocess.run([sys.executable, "-m", "eosteach", "resume", str(tmp_path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a plain checkpoint" in proc.stderr
    assert not marker.exists()


# --------------------------------------------------------------------------- real processes


def _eosteach(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "eosteach", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _wait_for_checkpoint(proc, folder: Path, min_step: int, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        ckpt = folder / runs.RUN_JSON
        if (folder / runs.CHECKPOINT).is_file() and ckpt.is_file():
            try:
                if json.loads(ckpt.read_text())["steps_done"] >= min_step:
                    return
            except (ValueError, KeyError):
                pass
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint past step {min_step} (process ended: {proc.poll()})")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = _eosteach("run", *ARGS, "--checkpoint-every", "50", "--out", str(out))
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    return runs.load_run(out).metrics


def _assert_same(a, b):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slow
def test_sigkill_then_resume_equals_the_uninterrupted_run(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = _eosteach("run", *ARGS, "--checkpoint-every", "50", "--out", str(out))
    _wait_for_checkpoint(proc, out, 100)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed = runs.load_run(out)
    assert killed.status == "running" and 100 <= len(killed.metrics["step"]) < 600
    resumed = subprocess.run([sys.executable, "-m", "eosteach", "resume", str(out), "--no-progress"],
                             capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same(runs.load_run(out).metrics, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_end_the_run_as_interrupted_and_resumable(tmp_path, uninterrupted, signum, code):
    out = tmp_path / "run"
    proc = _eosteach("run", *ARGS, "--checkpoint-every", "50", "--out", str(out))
    _wait_for_checkpoint(proc, out, 50)
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == code
    assert "interrupted" in proc.stderr.read()
    stopped = runs.load_run(out)
    assert stopped.status == "interrupted"
    state = runs.load_checkpoint(out / runs.CHECKPOINT)
    assert state["step"] == stopped.info["steps_done"] == len(stopped.metrics["step"]) < 600
    assert subprocess.run([sys.executable, "-m", "eosteach", "resume", str(out), "--no-progress"],
                          capture_output=True, cwd=ROOT, timeout=600).returncode == 0
    _assert_same(runs.load_run(out).metrics, uninterrupted)
