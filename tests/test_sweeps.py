"""Sweeps on Dask (eosteach.sweeps, ``eosteach sweep``): the grid, the embedded LocalCluster,
a real cluster started here on 127.0.0.1 (``dask scheduler`` plus two ``dask worker``
processes) that loses a worker to SIGKILL mid-sweep, and bad input.

Every sweep's metrics are compared with the same runs trained one after another in this
process with one torch thread, as the workers use: they must be equal bit for bit."""

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

from eosteach import runs, sweeps

ROOT = Path(__file__).resolve().parents[1]
BASE = runs.RunConfig(data="synthetic", n_train=200, arch="fc-tanh", width=32, steps=240, eig_every=40,
                      checkpoint_every=40, device="cpu")
GRID = dict(lr=[0.02, 0.05], seed=[0, 1])


def sequential(configs):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [runs.train(c, progress=False) for c in configs]
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference():
    return {c.key(): r for c, r in zip(sweeps.grid(BASE, **GRID), sequential(sweeps.grid(BASE, **GRID)))}


def assert_same_as_reference(results, reference):
    assert len(results) == len(reference)
    for r in results:
        assert r.status == "finished", (r.path, r.status, r.error)
        want = reference[r.config.key()].metrics
        got = runs.load_run(r.path).metrics
        for name in ("loss", "accuracy", "sharpness", "distance"):
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{r.path.name}: {name}")


# --------------------------------------------------------------------------- the grid


def test_grid_is_the_cartesian_product():
    configs = sweeps.grid(BASE, lr=[0.01, 0.02], seed=[0, 1, 2])
    assert [(c.lr, c.seed) for c in configs] == [(0.01, 0), (0.01, 1), (0.01, 2), (0.02, 0), (0.02, 1), (0.02, 2)]
    assert all(c.width == 32 for c in configs)
    assert sweeps.varying_fields(configs) == ["lr", "seed"]
    assert sweeps.folder_name(configs[1], ["lr", "seed"]) == "lr0.01-seed1"


@pytest.mark.parametrize("kwargs, match", [
    (dict(lrr=[0.1]), "unknown run setting 'lrr'"),
    (dict(lr=[]), "axis lr is empty"),
    (dict(lr=0.1), "axis lr must be a list"),
    (dict(lr=[0.1, 0.1]), "repeats a setting"),
    (dict(lr=[-1.0]), "lr must be a finite number > 0"),
])
def test_bad_grids_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sweeps.grid(BASE, **kwargs)


# --------------------------------------------------------------------------- the embedded default


@pytest.mark.slow
def test_local_cluster_sweep_matches_sequential_runs_and_is_idempotent(tmp_path, reference):
    configs = sweeps.grid(BASE, **GRID)
    results = sweeps.sweep(configs, tmp_path / "sweep", progress=False)
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == [
        "lr0.02-seed0", "lr0.02-seed1", "lr0.05-seed0", "lr0.05-seed1"]
    assert_same_as_reference(results, reference)
    table = sweeps.summary_table(results)
    assert "lr0.05-seed1" not in table and table.splitlines()[0].split()[:4] == ["lr", "seed", "status", "steps"]

    start = time.perf_counter()
    again = sweeps.sweep(configs, tmp_path / "sweep", progress=False)  # nothing to train: no cluster started
    assert time.perf_counter() - start < 1.0
    assert [r.steps for r in again] == [r.steps for r in results]


def test_a_failing_run_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    configs = sweeps.grid(runs.dataclasses.replace(BASE, steps=20), lr=[0.02, 0.05])
    bad = sweeps.folder_name(configs[1], ["lr"])
    (tmp_path / bad).mkdir(parents=True)
    other = runs.dataclasses.replace(configs[1], width=8)
    (tmp_path / bad / runs.RUN_JSON).write_text(json.dumps({"config": other.to_dict(), "status": "running"}))
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        results = sweeps.sweep(configs, tmp_path, client=client, progress=False)
    assert [r.status for r in results] == ["finished", "failed"]
    assert "holds a run with other settings" in results[1].error
    assert (tmp_path / bad / sweeps.ERROR_FILE).is_file()


# --------------------------------------------------------------------------- a real cluster


def _start(args, log):
    return subprocess.Popen([sys.executable, "-m", "distributed.cli." + args[0], *args[1:]],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)


@pytest.mark.slow
def test_real_cluster_survives_a_worker_killed_mid_sweep(tmp_path, reference):
    from distributed import Client

    log = open(tmp_path / "dask.log", "w")
    sched_file = tmp_path / "scheduler.json"
    procs = [_start(["dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
                     "--scheduler-file", str(sched_file)], log)]
    try:
        deadline = time.time() + 60
        while not sched_file.is_file() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            procs.append(_start(["dask_worker", address, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                                 "--dashboard-address", "127.0.0.1:0"], log))
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            configs = sweeps.grid(BASE, **GRID)
            out = tmp_path / "sweep"
            future_results = {}

            import threading

            def go():
                future_results["r"] = sweeps.sweep(configs, out, client=client, progress=False)

            thread = threading.Thread(target=go)
            thread.start()
            # Kill one worker as soon as some run has written a checkpoint (it is mid-run).
            deadline = time.time() + 120
            while not list(out.glob("*/checkpoint.pt")) and time.time() < deadline:
                time.sleep(0.05)
            assert list(out.glob("*/checkpoint.pt")), "no run reached its first checkpoint"
            victim = procs[1]
            by_pid = {pid: addr for addr, pid in client.run(os.getpid).items()}
            assert client.processing()[by_pid[victim.pid]], "the worker to kill must be mid-run"
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            thread.join(timeout=600)
            assert not thread.is_alive()
        results = future_results["r"]
        assert_same_as_reference(results, reference)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        log.close()


# --------------------------------------------------------------------------- the command line


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "eosteach", "sweep", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


@pytest.mark.parametrize("args, words", [
    (["--lr", "0.01,,x"], "empty value in the comma list"),
    (["--lr", "0.01,x"], "not a comma list"),
    (["--lrr", "0.01"], "unrecognized arguments"),
    (["--opt", "gd,adamw"], "opt must be one of"),
])
def test_cli_bad_grids_exit_2_with_one_line(tmp_path, args, words):
    proc = _cli("--data", "synthetic", *args, "--out", str(tmp_path / "s"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr


def test_cli_unreachable_scheduler_is_a_quick_one_line_error(tmp_path):
    start = time.perf_counter()
    proc = _cli("--data", "synthetic", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "s"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "no Dask scheduler answered" in proc.stderr
    assert time.perf_counter() - start < 30


def test_cli_unwritable_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = _cli("--data", "synthetic", "--steps", "5", "--out", str(blocker / "sweep"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "is not writable" in proc.stderr


@pytest.mark.slow
def test_cli_sweep_runs_the_grid_and_prints_the_table(tmp_path):
    proc = _cli("--data", "synthetic", "--n-train", "100", "--width", "16", "--steps", "30", "--eig-every", "10",
                "--lr", "0.02,0.05", "--workers", "2", "--no-progress", "--out", str(tmp_path / "s"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["lr", "status", "steps"]
    assert [line.split()[:3] for line in lines[1:]] == [["0.02", "finished", "30"], ["0.05", "finished", "30"]]
