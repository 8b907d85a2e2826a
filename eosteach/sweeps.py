"""Sweeps: a grid of training runs on Dask distributed (Cohen et al. 2021, Figure 1, is one).

    configs = sweeps.grid(RunConfig(n_train=5000, acc_goal=0.99, steps=100_000),
                          lr=[0.01, 2 / 150, 2 / 120, 0.02], seed=[0, 1])
    results = sweeps.sweep(configs, "runs/fig1")          # a LocalCluster on this machine
    results = sweeps.sweep(configs, "runs/fig1", client=Client("tcp://host:8786"))

Each run lives in its own folder under ``out``, named by the settings that vary across the
grid (``lr0.01-seed0``). A sweep is idempotent and resumable: finished runs are returned
at once, interrupted ones (a killed process leaves "running" or "interrupted" in
run.json) continue from their last checkpoint (runs in a folder checkpoint by default,
``runs.CHECKPOINT_STEPS`` steps or ``runs.CHECKPOINT_SECONDS`` seconds). A worker that dies mid-run has its task re-scheduled by Dask,
and the new attempt resumes from that checkpoint. A run that diverges is recorded with
that status; a run that raises is recorded as "failed" with its error (and
``sweep-error.txt`` in its folder) and the others go on.

Without a client, ``sweep`` starts a ``LocalCluster``: one single-threaded worker process
per core, listening on 127.0.0.1 only. Inside every worker torch uses one thread per run
(``torch_threads``), so that runs do not fight over cores. The run folders must be on a
filesystem that every worker sees.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import runs

ERROR_FILE = "sweep-error.txt"
FAILED = "failed"


@dataclass
class SweepResult:
    """One run of a sweep: its settings, folder, status and last records.

    status: a run status (``runs.STATUSES``) or "failed" (the run raised; ``error`` says
    what). steps: steps done; loss / accuracy: the last train records; sharpness /
    threshold: the last tracked values (NaN if none); wall_s: training wall time (s)."""

    config: runs.RunConfig
    path: Path
    status: str
    steps: int = 0
    loss: float = float("nan")
    accuracy: float = float("nan")
    sharpness: float = float("nan")
    threshold: float = float("nan")
    wall_s: float = float("nan")
    error: str | None = None


# --------------------------------------------------------------------------- the grid


def grid(base=None, **axes) -> list:
    """The Cartesian product of ``axes`` (field name -> list of values) over ``base``.

    base: a ``runs.RunConfig`` or a dict of its fields (default: ``RunConfig()``). Each
    axis must name a RunConfig field and hold at least one value; the configs come in
    the order of ``itertools.product`` over the axes as given. Invalid values raise the
    ValueError of RunConfig, naming the field."""
    fields = [f.name for f in dataclasses.fields(runs.RunConfig)]
    if base is None:
        base = {}
    elif isinstance(base, runs.RunConfig):
        base = base.to_dict()
    elif not isinstance(base, dict):
        raise ValueError(f"base must be a RunConfig or a dict of its fields, got {type(base).__name__}")
    for name in list(base) + list(axes):
        if name not in fields:
            raise ValueError(f"unknown run setting {name!r}; the settings are: {', '.join(fields)}")
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"axis {name} must be a list of values, got {values!r}")
        if len(list(values)) == 0:
            raise ValueError(f"axis {name} is empty; give at least one value")
    names = list(axes)
    configs = [runs.RunConfig(**{**base, **dict(zip(names, combo))})
               for combo in itertools.product(*(list(axes[n]) for n in names))]
    if len({c.key() for c in configs}) != len(configs):
        raise ValueError("the grid repeats a setting: every run must differ")
    return configs


def varying_fields(configs) -> list[str]:
    """The RunConfig fields whose value differs between ``configs``, in field order."""
    dicts = [c.to_dict() for c in configs]
    return [f.name for f in dataclasses.fields(runs.RunConfig)
            if len({repr(d.get(f.name)) for d in dicts}) > 1]


def folder_name(config, varying) -> str:
    """The run folder's name from the varying settings, e.g. ``lr0.01-seed0``."""
    if not varying:
        return config.key()
    parts = []
    for name in varying:
        value = getattr(config, name)
        text = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(name.replace("_", "-") + "".join(ch if ch.isalnum() or ch in ".-" else "_" for ch in text))
    return "-".join(parts)


# --------------------------------------------------------------------------- one run (on a worker)


def _result(run, path: Path, error=None) -> SweepResult:
    m = run.metrics if run is not None else {}

    def last(name):
        a = m.get(name)
        return float(a[-1]) if a is not None and len(a) else float("nan")

    status = FAILED if error is not None else run.status
    steps = int(run.info.get("steps_done", len(m.get("step", [])))) if run is not None else 0
    wall = float(run.info.get("wall_time_s", float("nan"))) if run is not None else float("nan")
    config = run.config if run is not None else None
    return SweepResult(config=config, path=path, status=status, steps=steps, loss=last("loss"),
                       accuracy=last("accuracy"), sharpness=last("sharpness"), threshold=last("threshold"),
                       wall_s=wall, error=error)


def run_one(config_dict: dict, path, torch_threads: int | None = 1) -> SweepResult:
    """Train, resume or return the run of ``config_dict`` in folder ``path`` (a worker task).

    A finished run is returned as it is; an unfinished one resumes from its checkpoint; a
    run folder holding other settings is an error. Exceptions are caught and returned as
    status "failed", so one bad run never stops a sweep."""
    import torch

    if torch_threads is not None:
        torch.set_num_threads(int(torch_threads))
    path = Path(path)
    config = runs.RunConfig.from_dict(config_dict)
    try:
        if (path / runs.RUN_JSON).is_file():
            existing = runs.load_run(path)
            if existing.config != config:
                raise ValueError(f"{path} holds a run with other settings")
            run = existing if existing.status in runs.DONE else runs.resume(path, progress=False)
        else:
            run = runs.train(config, out=path, progress=False)
        (path / ERROR_FILE).unlink(missing_ok=True)
        return _result(run, path)
    except Exception as error:  # noqa: BLE001 - recorded, the sweep goes on
        text = f"{type(error).__name__}: {error}"
        path.mkdir(parents=True, exist_ok=True)
        (path / ERROR_FILE).write_text(traceback.format_exc())
        try:
            run = runs.load_run(path)
        except (FileNotFoundError, ValueError, KeyError):
            run = None
        result = _result(run, path, error=text)
        result.config = config
        return result


# --------------------------------------------------------------------------- the sweep


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ValueError(f"out: the sweep folder {out} is not writable ({error.strerror or error})") from None


def local_client(n_workers: int | None = None):
    """A Dask client on a LocalCluster: ``n_workers`` (default: one per core) single-threaded
    worker processes on 127.0.0.1, dashboard on a free local port."""
    from distributed import Client, LocalCluster

    n = n_workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    return Client(cluster)


def connect(address: str, timeout_s: float = 3.0):
    """A client of the Dask scheduler at ``address`` (tcp://HOST:PORT); a ValueError within
    ``timeout_s`` seconds when none answers."""
    from distributed import Client

    if not isinstance(address, str) or "://" not in address:
        raise ValueError(f"scheduler must be an address such as tcp://127.0.0.1:8786, got {address!r}")
    try:
        return Client(address, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError) as error:
        raise ValueError(f"scheduler {address}: no Dask scheduler answered within {timeout_s:g} s "
                         f"({type(error).__name__})") from None


def sweep(configs, out, *, client=None, progress: bool = True, torch_threads: int | None = 1) -> list:
    """Run every config of ``configs`` in its own folder under ``out``; return their
    ``SweepResult`` in the order given.

    client: a ``distributed.Client`` (None: a LocalCluster started and closed here).
    Finished runs are read, not trained; the others are submitted, each as one task, and
    resumed from their checkpoint when the sweep or a worker was interrupted."""
    configs = list(configs)
    if not configs:
        raise ValueError("configs is empty: a sweep needs at least one run")
    for c in configs:
        if not isinstance(c, runs.RunConfig):
            raise ValueError(f"configs must hold RunConfig objects, got {type(c).__name__}")
    if len({c.key() for c in configs}) != len(configs):
        raise ValueError("configs repeats a setting: every run must differ")
    out = Path(out)
    _check_writable(out)
    varying = varying_fields(configs)
    paths = [out / folder_name(c, varying) for c in configs]
    results: list = [None] * len(configs)
    todo = []
    for i, (c, p) in enumerate(zip(configs, paths)):
        if (p / runs.RUN_JSON).is_file():
            try:
                done = runs.load_run(p)
            except (ValueError, KeyError):
                done = None
            if done is not None and done.config == c and done.status in runs.DONE:
                results[i] = _result(done, p)
                continue
        todo.append(i)
    if todo:
        own = client is None
        if own:
            client = local_client()
        try:
            if progress:
                print(f"eosteach sweep: {len(todo)} of {len(configs)} runs to do; dashboard {client.dashboard_link}",
                      flush=True)
            _gather(client, [(i, configs[i], paths[i]) for i in todo], results, progress, torch_threads)
        finally:
            if own:
                cluster = client.cluster
                client.close()
                cluster.close()
    return results


def _gather(client, jobs, results, progress: bool, torch_threads) -> None:
    from distributed import as_completed

    futures = {}
    for i, config, path in jobs:
        future = client.submit(run_one, config.to_dict(), str(path), torch_threads, pure=False)
        futures[future] = i
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="runs", unit="run", dynamic_ncols=True)
    counts = {"finished": 0, "failed": 0}
    try:
        for future in as_completed(futures):
            i = futures[future]
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - the task itself was lost (workers kept dying)
                config, path = jobs[[j for j, *_ in jobs].index(i)][1:]
                result = SweepResult(config=config, path=path, status=FAILED, error=f"{type(error).__name__}: {error}")
            results[i] = result
            counts["failed" if result.status == FAILED else "finished"] += 1
            if bar is not None:
                threads = client.nthreads()  # tasks beyond a worker's threads wait in its queue
                running = sum(min(len(v), threads.get(w, 1)) for w, v in client.processing().items())
                bar.set_postfix(finished=counts["finished"], running=running, failed=counts["failed"], refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def summary_table(results, varying=None) -> str:
    """A plain-text table of ``results``: the varying settings, status, steps, final loss and
    accuracy, last sharpness against its threshold, wall time."""
    results = list(results)
    if varying is None:
        varying = varying_fields([r.config for r in results]) if len(results) > 1 else []
    head = [*varying, "status", "steps", "loss", "acc", "S", "S/thr", "wall s"]
    rows = []
    for r in results:
        ratio = r.sharpness / r.threshold if r.threshold == r.threshold and r.threshold else float("nan")
        rows.append([*(f"{getattr(r.config, v):g}" if isinstance(getattr(r.config, v), float)
                       else str(getattr(r.config, v)) for v in varying),
                     r.status, str(r.steps), f"{r.loss:.4g}", f"{r.accuracy:.3f}", f"{r.sharpness:.4g}",
                     f"{ratio:.3f}", f"{r.wall_s:.1f}"])
    widths = [max(len(h), *(len(row[k]) for row in rows)) for k, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    for r in results:
        if r.error:
            lines.append(f"{r.path.name}: {r.error}")
    return "\n".join(lines)
