"""Reference runs shipped with the package: Cohen et al. (ICLR 2021), Figure 1, at the
paper's own scale, for readers without a GPU or an hour to spare.

The four runs of Figure 1's fc-tanh panel: fc-tanh 3072-200-200-10 on cifar10-5k (the first
5,000 CIFAR-10 training images; Krizhevsky, 2009), MSE (the mean over examples of
1/2 ||f(x) - e_y||^2), full-batch GD at eta = 2/200, 2/150, 2/120 and 2/100, trained until
the train accuracy reached 99%, the sharpness S = lambda_max(H) measured every 50 steps.
They were made with ``eosteach sweep`` (``MADE_BY``) on a 2-core CPU, and each is named by its
2/eta: ``load("fig1-tanh-150")`` is the run at eta = 2/150.

A fifth run is lesson 4's learning-rate drop at the same scale (Cohen et al. 2021, Section
3.1): the same network and data, GD at eta = 0.02 (2/eta = 100) for 2,000 steps, then eta x 0.8
= 0.016 (2/eta = 125) to step 6,000, the sharpness every 50 steps (``LR_DROP``, made with
``MADE_BY_LR_DROP``; ``lr_drop()`` loads it).

Each run is stored as its ``run.json`` (every setting, versions, device, wall time) and a
compressed ``metrics.npz`` (``pack``): float arrays as float32 (relative rounding 6e-8, far
below anything a figure or a claim resolves), index arrays as int32. ``load`` returns an
``eosteach.runs.Run`` whose metrics are float64 again and whose ``path`` is None (the final
parameters are not shipped: 2.6 MB a run). Anyone can check that the records are
reproducible: ``tests/test_reference.py`` re-trains the first 200 steps of each run from its
recorded settings and compares the loss at every step and the sharpness every 50 steps.
"""

from __future__ import annotations

import io
import json
from importlib import resources
from pathlib import Path

import numpy as np

from . import files, runs

#: The folder inside the package that holds one sub-folder per reference run.
FOLDER = "reference_runs"
#: Figure 1's runs, smallest step size first: name -> eta.
FIGURE1 = {"fig1-tanh-200": 2 / 200, "fig1-tanh-150": 2 / 150, "fig1-tanh-120": 2 / 120, "fig1-tanh-100": 2 / 100}
#: The command that made them (README, "Figure 1 at the paper's scale").
MADE_BY = ("eosteach sweep --data cifar10 --n-train 5000 --arch fc-tanh --width 200 --depth 2 --loss mse "
           "--opt gd --lr 0.01,0.013333333333333334,0.016666666666666666,0.02 --acc-goal 0.99 "
           "--steps 100000 --eig-every 50 --out runs/fig1")

#: Lesson 4's learning-rate drop at the paper's scale: its name and the settings that make it
#: differ from Figure 1's eta = 2/100 run (a fixed step budget instead of the 99% goal).
LR_DROP = {"name": "lrdrop-tanh-100", "lr": 0.02, "lr_drop_step": 2000, "lr_drop_factor": 0.8, "steps": 6000}
MADE_BY_LR_DROP = ("eosteach run --data cifar10 --n-train 5000 --arch fc-tanh --width 200 --depth 2 --loss mse "
                   "--opt gd --lr 0.02 --lr-drop-step 2000 --lr-drop-factor 0.8 --steps 6000 --eig-every 50 --checkpoint-every 500 "
                   "--out runs/lrdrop-tanh-100")


def names() -> list[str]:
    """The names of the shipped reference runs: ``FIGURE1``'s, in its order, then ``LR_DROP``'s."""
    return [*FIGURE1, LR_DROP["name"]]


def _folder(name: str):
    if name not in names():
        raise ValueError(f"name must be one of {', '.join(names())}, got {name!r}")
    return resources.files("eosteach").joinpath(FOLDER, name)


def load(name: str) -> runs.Run:
    """The shipped reference run ``name`` (one of ``names()``) as an ``eosteach.runs.Run``:
    ``metrics`` as in ``eosteach.runs`` (float64 arrays; ``eig_step``, ``sharpness``,
    ``threshold`` every 50 steps), ``info`` the run's run.json, ``path`` None."""
    folder = _folder(name)
    info = json.loads(folder.joinpath(runs.RUN_JSON).read_text())
    with np.load(io.BytesIO(folder.joinpath(runs.METRICS).read_bytes())) as f:
        metrics = {k: f[k].astype(np.float64 if f[k].dtype.kind == "f" else np.int64) for k in f.files}
    return runs.Run(config=runs.RunConfig.from_dict(info["config"]), status=info["status"], metrics=metrics,
                    path=None, info=info)


def figure1() -> dict[float, runs.Run]:
    """Figure 1's four runs as {eta: Run}, the form ``eosteach.plotting.step_size_sweep`` draws."""
    return {eta: load(name) for name, eta in FIGURE1.items()}


def lr_drop() -> runs.Run:
    """Lesson 4's paper-scale learning-rate drop (``LR_DROP``) as an ``eosteach.runs.Run``, with
    ``metrics`` as in ``load``; ``metrics["threshold"]`` is 2/eta of each step's own eta (100,
    then 125 from step 2,000 on)."""
    return load(LR_DROP["name"])


def pack(run_dir, dest) -> Path:
    """Write the compact copy of the finished run in ``run_dir`` to the folder ``dest``
    (created): run.json as it is, metrics.npz compressed with float arrays as float32 and
    integer arrays as int32. Returns ``dest``. This is how the shipped runs were made."""
    run = runs.load_run(run_dir)
    if run.status not in runs.DONE:
        raise ValueError(f"run_dir must hold a finished run, got status {run.status!r} in {run_dir}")
    dest = Path(dest)
    small = {}
    for k, v in run.metrics.items():
        v = np.asarray(v)
        small[k] = v.astype(np.float32) if v.dtype.kind == "f" else v.astype(np.int32)
    files.atomic_save_npz(dest / runs.METRICS, compressed=True, **small)
    files.atomic_write_json(dest / runs.RUN_JSON, run.info)
    return dest
