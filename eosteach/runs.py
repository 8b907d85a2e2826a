"""Training runs with sharpness tracking: the experiment of Cohen et al. (ICLR 2021).

``train(RunConfig(...))`` trains a network full-batch (or mini-batch SGD) and records
these series (``SERIES``, float64 unless marked; a ``Recorder`` keeps them):

    every step
        step                      the step t (records at t describe theta_t, before update t) [int64]
        loss                      train loss on the step's batch (full batch but for sgd)
        accuracy                  train accuracy on the step's batch
        lr                        eta at step t (after lr_drop_step: eta x lr_drop_factor)
        time                      the sum of the step sizes before step t (flow: of alpha / S)
    every eig_every steps
        eig_step                  the tracking step (every eig_every steps) [int64]
        sharpness                 S = lambda_1(H), Lanczos (eosteach.hessian)
        eigenvalues               the top eig_k eigenvalues of H, shape (n, eig_k), NaN if not found
        threshold                 the method's own threshold at the current lr (2/eta for GD)
        distance                  ||theta_t - theta_0||
        n_products                Hessian-vector products the tracking step used [int64]
        preconditioned_sharpness  lambda_1(P^-1 H) (adam, rmsprop; NaN before P exists)
        full_loss                 the full-batch train loss (sgd)
        full_accuracy             the full-batch train accuracy (sgd)
        batch_sharpness           mean over k mini-batches of g_B^T H_B g_B / ||g_B||^2 (batch_sharpness=k)
    every test_every steps
        test_step                 the test step (every test_every steps) [int64]
        test_loss                 loss on the test split
        test_accuracy             accuracy on the test split

Records at step t describe theta_t, the parameters BEFORE update t. The sharpness is
computed by Lanczos (``eosteach.hessian``), warm-started from the previous eigenvectors.

A run stops at its step budget ("finished"), when the loss falls to ``loss_goal`` or the
accuracy reaches ``acc_goal`` ("goal_reached"), or when the loss stops being finite
("diverged": every finite record is kept). With ``out`` the run lives in a folder:

    run.json        every setting, versions, device, seed, status, timings   (atomic)
    metrics.npz     the records above, as numpy arrays                       (atomic)
    final.pt        the final parameters as one flat vector
    checkpoint.pt   parameters, optimiser state, RNG, step: by default every
                    CHECKPOINT_STEPS steps or CHECKPOINT_SECONDS seconds, whichever
                    comes first (``checkpoint_every=k``: every k steps; 0: never).
                    metrics.npz and run.json are rewritten at each checkpoint, so a
                    run in progress can be plotted, and a killed run loses at most
                    the steps since its last checkpoint.

``resume(path)`` continues from the last checkpoint; on the CPU the continued run equals
the uninterrupted one bit for bit (tracking never touches the parameters, the optimiser
or the batch sampler's generator). SIGTERM and SIGINT (Ctrl-C) end a run in the main
thread cleanly: a checkpoint at the current step, status "interrupted", then
``Interrupted`` (a KeyboardInterrupt) is raised. Checkpoints are read with
``torch.load(weights_only=True)``: a file that would run code is refused. ``cached_run(config)`` reuses a finished run with the
same settings from ``eosteach.config.runs_dir()``, so lessons re-execute instantly.

Speed: the hot loop is forward, backward (``torch.autograd.grad``), one fused optimiser
update. On CUDA the loss is copied to the host only every ``SYNC_EVERY_CUDA`` steps (and at
tracking steps), so the GPU never waits for Python; stop conditions are checked then.
A full-batch tracking step keeps its gradient's graph (``create_graph=True``; the gradient
is the same) and the Hessian products reuse it; one buffer per dtype holds the Lanczos
vectors for the whole run (float32 for a float32 run at the tracking tolerance:
``hessian.krylov_dtype``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__, config as _config, files, optim, validate

OPTIMIZERS = optim.OPTIMIZERS
DTYPES = {"float32": torch.float32, "float64": torch.float64}
STATUSES = ("running", "finished", "goal_reached", "diverged", "interrupted")
DONE = ("finished", "goal_reached", "diverged")

#: Lanczos settings for tracking: relative residual tolerance (``hessian.lanczos``,
#: stop="residual") and product cap. The error of a Ritz value is about residual^2 / gap, so
#: a residual of 3e-3 |lambda| leaves the sharpness accurate to ~1e-5..1e-4 relative
#: (measured against tol 1e-7 at the edge of stability: 2e-5), with ~5 warm-started products
#: instead of ~7 at 1e-3. This rule does not see a swap of the top two eigenvalues between
#: points: along fc-tanh 200-200 on cifar10-1k at eta = 0.02 (``benchmarks/warm_starts.py``)
#: the new top eigenvector had a squared overlap of 4e-4 and 1e-3 with the previous top at
#: steps 550 and 850, the solve converged on the old one, now second, and the sharpness came
#: out 2.1e-3 and 7.7e-3 low (the top two were 0.22% and 0.76% apart; the certified rule
#: missed the first as well, by 2.2e-3); the other 19 points were within 1.8e-4. The
#: certified eigenvalue rule (stop="eigenvalue") was measured along fc-tanh 200-200 on
#: cifar10-1k at eta = 0.02, 1,000 steps, sharpness every 50: at tol 1e-3 it used 5.1
#: products per point while sharpening and 15.6 at the edge of stability, against 5.6 and
#: 14.7 here: at the edge several top eigenvalues crowd 2/eta, the
#: gap the bound needs is not clear of their residuals, and it falls back on the residual.
#: Warm-starting from the top two Ritz vectors (their sum) instead of the top one measured
#: 7.4 and 13.8. A block warm start measured 7.0 and 13.5 (9.0 and 14.9 under the certified
#: rule): Rayleigh-Ritz on the previous top four Ritz vectors whenever the previous top
#: eigenvector's relative residual at the new point exceeded 0.05, then Lanczos from the
#: best vector of that span. The exact top four eigenvectors of the previous point mostly
#: span the new top one (squared overlap 0.18-0.99, median 0.91, steps 500-1000): from them
#: the fewest products to 1e-3 averaged 7.2, against 11.7 from the top one alone. But the
#: lower Ritz vectors of a 5-15 product warm solve are too rough to span it. Starts built
#: from the training gradients themselves (free: the alternating sum of the last 2-16, or
#: Rayleigh-Ritz on their differences read as products, H g_j ~ (g_j - g_{j+1}) / eta) needed
#: 10.9-12.8 products at least at the edge, against 9.9 from the exact previous top
#: eigenvector: there an EoS step is too long for a difference to be a product (the secant
#: estimates of S were 93-398 against 100-114). None paid, so the run keeps this rule and the
#: top eigenvector.
EIG_TOL = 3e-3
#: With k > 1 a loose residual rule can accept the 3rd eigenvalue before the 2nd has appeared
#: in the Krylov space (seen at k = 2, tol 1e-3); a tight rule makes the top k trustworthy.
EIG_TOL_TOP_K = 1e-6
EIG_MAX_PRODUCTS = 100
#: On CUDA, losses travel to the host in blocks of this many steps (one sync per block).
SYNC_EVERY_CUDA = 20

RUN_JSON, METRICS, FINAL, CHECKPOINT = "run.json", "metrics.npz", "final.pt", "checkpoint.pt"
#: The default checkpoint rule for a run with a folder: this many steps or seconds, whichever
#: comes first.
CHECKPOINT_STEPS, CHECKPOINT_SECONDS = 300, 60.0


class Interrupted(KeyboardInterrupt):
    """A run ended by SIGTERM or SIGINT after saving a checkpoint (``signum`` says which)."""

    def __init__(self, signum: int):
        super().__init__(f"run interrupted by signal {signum}; resume it with eosteach resume")
        self.signum = signum

#: Settings added after runs were first cached, with their defaults: ``RunConfig.to_dict``
#: leaves them out while at the default, so earlier runs keep their keys (cache folders).
OPTIONAL_SETTINGS = {"batch_sharpness": None}


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run. Two runs with equal configs compute the same thing.

    data: "cifar10" | "synthetic"; n_train: first n training examples; classes: None (all),
    an int k (first k classes) or class names. arch/width/depth: ``eosteach.models``.
    loss: "mse" | "ce". opt: one of OPTIMIZERS; lr: eta (for "flow": alpha, the RK4 step
    is alpha / S); momentum: b (heavy_ball, nesterov, sgd) or Adam's beta1; beta2: Adam's
    beta2 or RMSProp's alpha; eps: Adam/RMSProp epsilon; batch_size: mini-batch size (sgd
    only). steps: step budget; eig_every: track the sharpness every k steps (None = never);
    eig_k: how many top eigenvalues. loss_goal / acc_goal: stop when the train loss is
    <= / the train accuracy is >= the goal. lr_drop_step / lr_drop_factor: eta is multiplied
    by the factor from that step on. test_every: evaluate the test split every k steps.
    checkpoint_every: None (default: every CHECKPOINT_STEPS steps or CHECKPOINT_SECONDS s,
    whichever comes first, when the run has a folder), k (every k steps) or 0 (never). seed: initialisation
    and batch order. device: "auto" | "cpu" | "cuda" | "cuda:N". dtype: "float32" | "float64".
    init_scale: multiply the initial parameters by this factor. batch_sharpness: None (not
    recorded) or k, the number of random mini-batches of ``batch_size`` examples (all n_train
    examples for gd) over which the batch sharpness E_B[g_B^T H_B g_B / ||g_B||^2]
    (Andreyev & Beneventano, 2024) is averaged at every tracking step (opt "sgd" or "gd").
    It is drawn from a generator of its own (seed + 2): the trajectory is unchanged.

    Settings added after runs were first cached (``OPTIONAL_SETTINGS``) are left out of
    ``to_dict`` while at their default, so every earlier run keeps its cache key.
    """

    data: str = "cifar10"
    n_train: int = 1000
    classes: tuple | int | None = None
    arch: str = "fc-tanh"
    width: int = 200
    depth: int = 2
    loss: str = "mse"
    opt: str = "gd"
    lr: float = 0.02
    momentum: float = 0.0
    beta2: float = 0.999
    eps: float = 1e-8
    batch_size: int | None = None
    steps: int = 1000
    eig_every: int | None = 50
    eig_k: int = 1
    loss_goal: float | None = None
    acc_goal: float | None = None
    lr_drop_step: int | None = None
    lr_drop_factor: float = 1.0
    test_every: int | None = None
    checkpoint_every: int | None = None
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    init_scale: float = 1.0
    batch_sharpness: int | None = None

    def __post_init__(self):
        from . import data, losses, models

        def put(name, value):
            object.__setattr__(self, name, value)

        def optional_int(name, minimum=1):
            value = getattr(self, name)
            if value is not None:
                put(name, validate.positive_int(name, value, minimum))

        validate.choice("data", self.data, data.DATASETS)
        validate.choice("arch", self.arch, models.ARCHS)
        validate.choice("loss", self.loss, losses.LOSSES)
        validate.choice("opt", self.opt, OPTIMIZERS)
        validate.choice("dtype", self.dtype, tuple(DTYPES))
        if not isinstance(self.device, str) or not (
            self.device in _config.DEVICE_CHOICES or self.device.startswith("cuda:")
        ):
            validate.choice("device", self.device, _config.DEVICE_CHOICES + ("cuda:N",))
        if isinstance(self.classes, (list, tuple)):
            put("classes", tuple(self.classes))
        elif self.classes is not None:
            put("classes", validate.positive_int("classes", self.classes, minimum=2))
        for name in ("n_train", "width", "depth", "steps", "eig_k"):
            put(name, validate.positive_int(name, getattr(self, name)))
        put("seed", validate.positive_int("seed", self.seed, minimum=0))
        for name in ("batch_size", "eig_every", "test_every", "batch_sharpness"):
            optional_int(name)
        optional_int("checkpoint_every", 0)
        optional_int("lr_drop_step", 0)
        for name in ("lr", "eps", "lr_drop_factor", "init_scale"):
            put(name, validate.positive(name, getattr(self, name)))
        put("momentum", validate.momentum("momentum", self.momentum))
        put("beta2", validate.momentum("beta2", self.beta2))
        if self.loss_goal is not None:
            put("loss_goal", validate.nonnegative("loss_goal", self.loss_goal))
        if self.acc_goal is not None:
            put("acc_goal", validate.positive("acc_goal", self.acc_goal))
            if self.acc_goal > 1:
                raise ValueError(f"acc_goal must lie in (0, 1], got {self.acc_goal!r}")
        if self.opt in ("gd", "rmsprop", "flow") and self.momentum != 0:
            raise ValueError(f"momentum must be 0 for opt={self.opt!r} (use heavy_ball, nesterov, sgd or adam)")
        if (self.opt == "sgd") != (self.batch_size is not None):
            raise ValueError("batch_size must be given for opt='sgd' and only for it")
        if self.batch_size is not None and self.batch_size > self.n_train:
            raise ValueError(f"batch_size must be at most n_train={self.n_train}, got {self.batch_size}")
        if self.opt == "flow" and self.eig_every is None:
            raise ValueError("eig_every must be set for opt='flow' (its step is alpha / sharpness)")
        if self.batch_sharpness is not None:
            if self.opt not in ("gd", "sgd"):
                raise ValueError(f"batch_sharpness is recorded for opt='sgd' or 'gd' only, got opt={self.opt!r}")
            if self.eig_every is None:
                raise ValueError("batch_sharpness needs eig_every: it is recorded at the tracking steps")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for name, default in OPTIONAL_SETTINGS.items():
            if d[name] == default:
                del d[name]
        if isinstance(d["classes"], tuple):
            d["classes"] = list(d["classes"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown run settings: {', '.join(sorted(unknown))}")
        return cls(**d)

    def key(self) -> str:
        """A short hash of every setting: the name of the cache folder."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def label(self) -> str:
        """A human-readable name, e.g. "gd lr=0.02 fc-tanh cifar10-1000"."""
        b = f" b={self.momentum:g}" if self.opt in ("heavy_ball", "nesterov", "adam") or self.momentum else ""
        return f"{self.opt} lr={self.lr:g}{b} {self.arch} {self.data}-{self.n_train}"


def cache_path(config: RunConfig) -> Path:
    """The folder of ``config``'s run under ``eosteach.config.runs_dir()``."""
    name = f"{config.opt}-{config.arch}-{config.data}-{config.n_train}-lr{config.lr:g}-{config.key()}"
    return _config.runs_dir() / name


# --------------------------------------------------------------------------- records


#: Every record a run can write to metrics.npz, grouped by the index it belongs to:
#: index -> {name: (meaning, numpy dtype, when)}, in the order of the file. ``when`` is
#: None (every run) or a predicate on the RunConfig (the series exists only where it holds).
#: The module docstring's table is ``records_table()``; a test keeps the two equal.
SERIES = {
    "step": {
        "step": ("the step t (records at t describe theta_t, before update t)", np.int64, None),
        "loss": ("train loss on the step's batch (full batch but for sgd)", np.float64, None),
        "accuracy": ("train accuracy on the step's batch", np.float64, None),
        "lr": ("eta at step t (after lr_drop_step: eta x lr_drop_factor)", np.float64, None),
        "time": ("the sum of the step sizes before step t (flow: of alpha / S)", np.float64, None),
    },
    "eig_step": {
        "eig_step": ("the tracking step (every eig_every steps)", np.int64, None),
        "sharpness": ("S = lambda_1(H), Lanczos (eosteach.hessian)", np.float64, None),
        "eigenvalues": ("the top eig_k eigenvalues of H, shape (n, eig_k), NaN if not found", np.float64, None),
        "threshold": ("the method's own threshold at the current lr (2/eta for GD)", np.float64, None),
        "distance": ("||theta_t - theta_0||", np.float64, None),
        "n_products": ("Hessian-vector products the tracking step used", np.int64, None),
        "preconditioned_sharpness": ("lambda_1(P^-1 H) (adam, rmsprop; NaN before P exists)", np.float64,
                                     lambda c: c.opt in optim.ADAPTIVE),
        "full_loss": ("the full-batch train loss (sgd)", np.float64, lambda c: c.opt == "sgd"),
        "full_accuracy": ("the full-batch train accuracy (sgd)", np.float64, lambda c: c.opt == "sgd"),
        "batch_sharpness": ("mean over k mini-batches of g_B^T H_B g_B / ||g_B||^2 (batch_sharpness=k)",
                            np.float64, lambda c: c.batch_sharpness is not None),
    },
    "test_step": {
        "test_step": ("the test step (every test_every steps)", np.int64, None),
        "test_loss": ("loss on the test split", np.float64, None),
        "test_accuracy": ("accuracy on the test split", np.float64, None),
    },
}
_GROUP_OF = {name: group for group, names in SERIES.items() for name in names}


#: When each group of SERIES is recorded.
GROUP_WHEN = {"step": "every step", "eig_step": "every eig_every steps", "test_step": "every test_every steps"}


def records_table() -> str:
    """The table of ``SERIES`` that the module docstring shows: a line per record, float64
    unless marked [int64]."""
    width = max(map(len, _GROUP_OF)) + 2
    lines = []
    for group, names in SERIES.items():
        lines.append(GROUP_WHEN[group])
        for name, (meaning, dtype, _) in names.items():
            kind = " [int64]" if dtype is np.int64 else ""
            lines.append(f"    {name:<{width}}{meaning}{kind}")
    return "\n".join(lines)


class Recorder:
    """The records of one run, in the declared ``SERIES``: ``append(group, **values)`` adds
    one row to a group (every name of the group that this run records, no other), and
    ``arrays()`` gives them as numpy arrays of the declared dtypes, the content of metrics.npz.

    names: the series this run records (``Recorder.for_config``); eig_k: the width of
    ``eigenvalues`` (its arrays have shape (n, eig_k)).
    """

    def __init__(self, names, eig_k: int = 1):
        unknown = [n for n in names if n not in _GROUP_OF]
        if unknown:
            raise ValueError(f"names must be declared in runs.SERIES, got {', '.join(unknown)}")
        self.eig_k = validate.positive_int("eig_k", eig_k)
        # In SERIES order whatever the order given, so that metrics.npz lists them as always.
        self.values = {n: [] for group in SERIES.values() for n in group if n in names}

    @classmethod
    def for_config(cls, config: RunConfig) -> "Recorder":
        """The series a run of ``config`` records: every ``when``-less one and those whose
        predicate holds."""
        return cls([n for group in SERIES.values() for n, (_, _, when) in group.items()
                    if when is None or when(config)], config.eig_k)

    @classmethod
    def from_metrics(cls, metrics: dict, config: RunConfig) -> "Recorder":
        """A recorder of ``config``'s series holding ``metrics`` (metrics.npz as loaded): a
        series missing from it starts empty; a name SERIES does not declare is refused."""
        unknown = sorted(set(metrics) - set(_GROUP_OF))
        if unknown:
            raise ValueError(f"metrics holds undeclared records: {', '.join(unknown)}")
        rec = cls.for_config(config)
        for name in rec.values:
            rec.values[name] = list(metrics[name]) if name in metrics else []
        return rec

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def append(self, group: str, **values) -> None:
        """One row of ``group`` ("step", "eig_step" or "test_step")."""
        validate.choice("group", group, tuple(SERIES))
        expected = {n for n in SERIES[group] if n in self.values}
        if set(values) != expected:
            wrong = sorted(set(values) ^ expected)
            raise ValueError(f"{group} records take exactly {', '.join(sorted(expected))}; got or missing "
                             f"{', '.join(wrong)} (runs.SERIES declares the names)")
        for name, value in values.items():
            self.values[name].append(value)

    def last(self, name: str):
        """The latest value of series ``name``."""
        return self.values[name][-1]

    def truncate(self, step: int) -> None:
        """Keep the rows recorded before ``step`` (resuming from a checkpoint at ``step``)."""
        for group in SERIES:
            if group not in self.values:
                continue
            keep = int(np.sum(np.asarray(self.values[group]) < step))
            for name in SERIES[group]:
                if name in self.values:
                    self.values[name] = self.values[name][:keep]

    def arrays(self) -> dict:
        """name -> numpy array of the declared dtype; ``eigenvalues`` has shape (n, eig_k)."""
        out = {}
        for name, values in self.values.items():
            a = np.asarray(values, dtype=SERIES[_GROUP_OF[name]][name][1])
            out[name] = a.reshape(len(values), self.eig_k) if name == "eigenvalues" else a
        return out


# --------------------------------------------------------------------------- results


@dataclass
class Run:
    """A run's settings, status, records and final parameters.

    ``metrics`` maps names to numpy arrays (see the module docstring); ``info`` is the
    content of run.json; ``path`` is the run folder (None for a run kept in memory).
    """

    config: RunConfig
    status: str
    metrics: dict
    path: Path | None = None
    info: dict = field(default_factory=dict)
    _final: torch.Tensor | None = field(default=None, repr=False)

    def final_params(self) -> torch.Tensor:
        """theta at the end of the run, as a flat CPU vector (n,)."""
        if self._final is None and self.path is not None:
            for name in (FINAL, CHECKPOINT):
                if (self.path / name).exists():
                    state = load_checkpoint(self.path / name)
                    flat = state["final"] if name == FINAL else torch.cat([p.reshape(-1) for p in state["params"]])
                    self._final = flat
                    break
        if self._final is None:
            raise ValueError(f"run has no saved parameters (status {self.status!r})")
        return self._final

    def model(self, device="cpu"):
        """The network at the final parameters (float dtype of the run), built as ``build``
        builds it, without loading the data (both datasets have 3072 inputs)."""
        from . import hessian

        dev = _config.device(device)
        net = _network(self.config, self.n_classes, dev)
        hessian.set_flat_params(net, self.final_params().to(dev))
        return net

    @property
    def n_classes(self) -> int:
        return int(self.info.get("n_classes", 10))

    def __repr__(self) -> str:
        steps = len(self.metrics.get("step", []))
        # A cached run is named by its folder alone, so that printed runs (in committed
        # notebooks, say) do not carry one machine's cache path.
        where = self.path
        if where is not None and Path(where).parent == _config.runs_dir():
            where = f"<runs cache>/{Path(where).name}"
        return f"Run({self.config.label()}, status={self.status!r}, steps={steps}, path={where})"


def load_checkpoint(path) -> dict:
    """A checkpoint or final.pt, read with ``torch.load(weights_only=True)``: tensors and plain
    Python values only. A file that holds anything else (a pickle that would run code, say)
    is refused with a ValueError, since run folders travel between people."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is not a plain checkpoint (tensors and numbers only) and was not loaded: "
                         f"{first}") from None


def load_run(path) -> Run:
    """The run saved in folder ``path`` (finished or not)."""
    path = Path(path)
    if not (path / RUN_JSON).is_file():
        raise FileNotFoundError(f"no run found in {path} (missing {RUN_JSON})")
    info = json.loads((path / RUN_JSON).read_text())
    config = RunConfig.from_dict(info["config"])
    metrics = {}
    if (path / METRICS).is_file():
        with np.load(path / METRICS) as f:
            metrics = {k: f[k] for k in f.files}
    return Run(config=config, status=info["status"], metrics=metrics, path=path, info=info)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Setup:
    """What a run of a config trains: ``build(config)``.

    net: the ``torch.nn.Module`` at theta_0 (``eosteach.models``, seeded by config.seed,
    scaled by init_scale), in config.dtype on ``device``; it maps x (n, d) to outputs (n, c).
    dataset: the ``eosteach.data.Dataset`` (x_train (n_train, d), y_train (n_train, c) one-hot
    for MSE or (n_train,) class indices for CE; the test split likewise), on ``device``.
    loss_fn: ``loss_fn(outputs, y)``, the mean loss over the examples, a 0-d tensor
    (``eosteach.losses``). device: the ``torch.device`` all of it lives on.
    """

    net: torch.nn.Module
    dataset: object
    loss_fn: object
    device: torch.device


def build(config: RunConfig, device=None) -> Setup:
    """The network at initialisation, the data and the loss of ``config``'s run, exactly as
    ``train`` starts from them. device: None (config.device), "cpu", "cuda", "cuda:N" or a
    ``torch.device``."""
    from . import data, losses

    if not isinstance(config, RunConfig):
        raise ValueError(f"config must be a RunConfig, got {type(config).__name__}")
    dev = _config.device(config.device if device is None else device)
    kwargs = dict(n_train=config.n_train, classes=config.classes, loss=config.loss, device=dev,
                  dtype=DTYPES[config.dtype])
    if config.data == "synthetic":
        kwargs["seed"] = config.seed
    dataset = data.load_dataset(config.data, **kwargs)
    net = _network(config, dataset.n_classes, dev, dataset.input_dim)
    return Setup(net=net, dataset=dataset, loss_fn=losses.get_loss(config.loss), device=dev)


def _network(config: RunConfig, n_classes: int, device, input_dim: int = 3072):
    from . import models

    net = models.make_model(
        config.arch, input_dim=input_dim, n_classes=n_classes, width=config.width, depth=config.depth,
        seed=config.seed, dtype=DTYPES[config.dtype], device=device,
    )
    if config.init_scale != 1.0:
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(config.init_scale)
    return net


class _Trainer:
    """The state of one run between steps, and the loop that advances it."""

    def __init__(self, config: RunConfig, out: Path | None):
        self.config, self.out = config, out
        setup = build(config)
        self.net, self.dataset, self.loss_fn, self.device = setup.net, setup.dataset, setup.loss_fn, setup.device
        self.x, self.y = self.dataset.x_train, self.dataset.y_train
        self.labels = self.y if self.y.ndim == 1 else self.y.argmax(dim=1)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.n_params = sum(p.numel() for p in self.params)
        self.theta0 = [p.detach().clone() for p in self.params]
        self.opt = optim.make_optimizer(config.opt, self.params, config.lr, momentum=config.momentum,
                                        beta2=config.beta2, eps=config.eps)
        self.schedule = optim.lr_schedule(config.lr, drop_step=config.lr_drop_step,
                                          drop_factor=config.lr_drop_factor)
        # Generators of their own: batches and Lanczos starts never share the global RNG.
        self.batch_gen = torch.Generator().manual_seed(config.seed)
        self.perm, self.perm_pos = None, 0
        self.bs_gen = None if config.batch_sharpness is None else torch.Generator().manual_seed(config.seed + 2)
        self.v0 = self.v0_pre = None
        self.workspaces = {}  # dtype -> the Lanczos buffer of every tracking point (_workspace)
        self.step, self.clock = 0, 0.0
        self.status, self.stop_step = "running", None
        self.rec = Recorder.for_config(config)
        self.pending = []  # (step, lr, time, loss tensor, correct tensor) not yet on the host
        self.signal = None  # set by SIGTERM / SIGINT: stop cleanly before the next step
        self.wall = 0.0

    # ---------------------------------------------------------------- one step
    def _batch(self):
        bs = self.config.batch_size
        if bs is None:
            return self.x, self.y
        n = self.x.shape[0]
        if self.perm is None or self.perm_pos + bs > n:  # a new epoch: reshuffle, drop the remainder
            self.perm, self.perm_pos = torch.randperm(n, generator=self.batch_gen), 0
        idx = self.perm[self.perm_pos:self.perm_pos + bs].to(self.device)
        self.perm_pos += bs
        return self.x[idx], self.y[idx]

    def _forward_backward(self, x, y, *, keep_graph: bool):
        """The loss (0-d, on the device), its gradient and the number of correct predictions
        (0-d, on the device: reading either would make the host wait for the GPU)."""
        out = self.net(x)
        loss = self.loss_fn(out, y)
        grads = torch.autograd.grad(loss, self.params, create_graph=keep_graph)
        labels = self.labels if self.config.batch_size is None else (y if y.ndim == 1 else y.argmax(dim=1))
        return loss.detach(), grads, (out.detach().argmax(dim=1) == labels).sum()

    def _grad_fn(self, x, y):
        def grad_fn():
            return torch.autograd.grad(self.loss_fn(self.net(x), y), self.params)
        return grad_fn

    # ---------------------------------------------------------------- records
    def _flush(self) -> bool:
        """Move pending losses to the host (one sync); False if a loss is not finite."""
        if not self.pending:
            return True
        values = torch.stack([torch.stack((lo.detach().to(torch.float64), c.to(torch.float64)))
                              for _, _, _, lo, c in self.pending]).cpu().numpy()
        n = self.x.shape[0] if self.config.batch_size is None else self.config.batch_size
        ok = True
        for (step, lr, clock, _, _), (loss, correct) in zip(self.pending, values):
            if not math.isfinite(loss):
                self.status, self.stop_step, ok = "diverged", step, False
                break
            self.rec.append("step", step=step, loss=loss, accuracy=correct / n, lr=lr, time=clock)
        self.pending = []
        return ok

    def _workspace(self, tol: float) -> torch.Tensor:
        """The buffer for the Lanczos vectors at tolerance ``tol`` (their dtype follows
        ``hessian.krylov_dtype``): one per dtype for the whole run."""
        from . import hessian

        dtype = hessian.krylov_dtype(self.params[0].dtype, tol, self.n_params)
        if dtype not in self.workspaces:
            self.workspaces[dtype] = torch.empty(min(32, self.n_params), self.n_params, dtype=dtype,
                                                 device=self.device)
        return self.workspaces[dtype]

    def _track(self, step: int, gradient=None) -> dict:
        """Record the sharpness (and the rest) at the current parameters. ``gradient``: the
        training step's create_graph=True full-batch gradient, reused by the products."""
        from . import hessian

        cfg = self.config
        n = self.n_params
        if self.v0 is None:  # a seeded random start: identical runs give identical sharpness
            gen = torch.Generator().manual_seed(cfg.seed + 1)
            self.v0 = torch.randn(n, generator=gen, dtype=self.params[0].dtype).to(self.device)
        tol = EIG_TOL if cfg.eig_k == 1 else EIG_TOL_TOP_K
        res = hessian.sharpness(self.net, self.loss_fn, self.x, self.y, k=cfg.eig_k, v0=self.v0,
                                tol=tol, stop="residual", max_products=EIG_MAX_PRODUCTS * cfg.eig_k,
                                gradient=gradient, workspace=self._workspace(tol))
        self.v0 = res.eigenvectors.detach()
        values = np.full(cfg.eig_k, np.nan)
        got = res.eigenvalues.detach().cpu().double().numpy()
        values[: len(got)] = got
        with torch.no_grad():
            diff = torch._foreach_sub(self.params, self.theta0)
            distance = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(diff))))
        info = {"sharpness": float(values[0]), "threshold": float(self.opt.threshold()), "distance": distance}
        row = dict(eig_step=step, eigenvalues=values, n_products=res.n_products, **info)
        if "preconditioned_sharpness" in self.rec:
            precond = self.opt.preconditioner()
            value = math.nan
            if precond is not None:
                if self.v0_pre is None:
                    self.v0_pre = self.v0[:, 0].clone()
                pre = hessian.preconditioned_sharpness(self.net, self.loss_fn, self.x, self.y, precond,
                                                       v0=self.v0_pre, tol=EIG_TOL, stop="residual",
                                                       max_products=EIG_MAX_PRODUCTS,
                                                       gradient=gradient, workspace=self._workspace(EIG_TOL))
                self.v0_pre = pre.eigenvectors.detach()
                value = pre.top
                row["n_products"] += pre.n_products
            row["preconditioned_sharpness"] = info["preconditioned_sharpness"] = value
        if "full_loss" in self.rec:
            with torch.no_grad():
                out = self.net(self.x)
                row["full_loss"] = float(self.loss_fn(out, self.y))
                row["full_accuracy"] = float((out.argmax(1) == self.labels).double().mean())
        if "batch_sharpness" in self.rec:
            b = cfg.batch_size or self.x.shape[0]
            row["batch_sharpness"] = info["batch_sharpness"] = hessian.batch_sharpness(
                self.net, self.loss_fn, self.x, self.y, b, cfg.batch_sharpness, generator=self.bs_gen)
        self.rec.append("eig_step", **row)
        if cfg.opt == "flow":
            self.opt.sharpness = info["sharpness"]
        return info

    @torch.no_grad()
    def _test(self, step: int) -> None:
        out = self.net(self.dataset.x_test)
        y = self.dataset.y_test
        labels = y if y.ndim == 1 else y.argmax(dim=1)
        self.rec.append("test_step", test_step=step, test_loss=float(self.loss_fn(out, y)),
                        test_accuracy=float((out.argmax(1) == labels).double().mean()))

    # ---------------------------------------------------------------- files
    def info(self) -> dict:
        dev = self.device
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
        return {
            "config": self.config.to_dict(), "key": self.config.key(), "status": self.status,
            "steps_done": self.step, "stop_step": self.stop_step, "seed": self.config.seed,
            "eosteach_version": __version__, "torch_version": torch.__version__,
            "python_version": platform.python_version(), "device": str(dev), "device_name": name,
            "dataset": self.dataset.name, "synthetic": bool(self.dataset.synthetic),
            "n_classes": self.dataset.n_classes, "n_params": self.n_params,
            "wall_time_s": round(self.wall, 3),
        }

    def save(self, *, final: bool = False) -> None:
        if self.out is None:
            return
        files.atomic_save_npz(self.out / METRICS, **self.rec.arrays())
        if final:
            files.atomic_torch_save(self.out / FINAL, {"final": self.final_params()})
        files.atomic_write_json(self.out / RUN_JSON, self.info())

    def final_params(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params]).cpu()

    def checkpoint(self) -> None:
        state = {
            "step": self.step, "clock": self.clock, "wall": self.wall,
            "params": [p.detach().cpu().clone() for p in self.params],
            "opt": _to_cpu(self.opt.state_dict()),
            "batch_gen": self.batch_gen.get_state(), "perm": self.perm, "perm_pos": self.perm_pos,
            "v0": _to_cpu(self.v0), "v0_pre": _to_cpu(self.v0_pre),
        }
        if self.bs_gen is not None:
            state["bs_gen"] = self.bs_gen.get_state()
        files.atomic_torch_save(self.out / CHECKPOINT, state)
        self.save()

    def restore(self, state: dict, metrics: dict) -> None:
        """Continue from a checkpoint: parameters, optimiser, sampler, warm starts, records."""
        dev = self.device
        with torch.no_grad():
            for p, saved in zip(self.params, state["params"]):
                p.copy_(saved)
        self.opt.load_state_dict(_to_device(state["opt"], dev))
        self.batch_gen.set_state(state["batch_gen"])
        self.perm, self.perm_pos = state["perm"], state["perm_pos"]
        if self.bs_gen is not None and "bs_gen" in state:
            self.bs_gen.set_state(state["bs_gen"])
        self.v0, self.v0_pre = _to_device(state["v0"], dev), _to_device(state["v0_pre"], dev)
        self.step, self.clock, self.wall = state["step"], state["clock"], state["wall"]
        # metrics.npz may run ahead of the checkpoint (rewritten since): the steps after it are redone.
        self.rec = Recorder.from_metrics(metrics, self.config)
        self.rec.truncate(self.step)

    # ---------------------------------------------------------------- the loop
    def run(self, *, progress: bool, callback) -> None:
        cfg = self.config
        self._start(progress, callback)
        try:
            while self.step < cfg.steps:
                if (self.signal is not None or self._checkpoint_due()) and not self._checkpoint_or_stop():
                    break
                step = self.step
                lr = self.opt.lr = self.schedule(step)
                x, y = self._batch()
                tracking = cfg.eig_every is not None and step % cfg.eig_every == 0
                # At a full-batch tracking step, the sharpness is measured at these very
                # parameters on this very batch: keep the gradient's graph for the Hessian
                # products (one forward and one backward pass fewer per tracking point).
                # The gradient's values are the same either way.
                reuse = tracking and cfg.batch_size is None
                loss, grads, correct = self._forward_backward(x, y, keep_graph=reuse)
                self.pending.append((step, lr, self.clock, loss, correct))
                # Stop rules read the loss on the host: only at the sync points.
                synced = tracking or len(self.pending) >= self.sync_every or step == cfg.steps - 1
                if synced and not self._flush():
                    break
                measured = self._track(step, grads if reuse else None) if tracking else {}
                if cfg.test_every and step % cfg.test_every == 0:
                    self._test(step)
                if synced and self._report(step, lr, measured, callback):
                    self.status, self.stop_step = "goal_reached", step
                    break
                if reuse:
                    grads = tuple(g.detach() for g in grads)  # frees the graph
                self.opt.step(grads, self._grad_fn(x, y))
                self.clock += self.opt.last_h if cfg.opt == "flow" else lr
                self.step += 1
            else:
                self._flush()
                self.status = "finished" if self.status == "running" else self.status
        except Interrupted:
            self.save()
            raise
        except BaseException:
            self.status = "interrupted"
            self.pending = []
            self._clock_wall()
            self.save()
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
        if self.status == "diverged":
            self.step = self.stop_step
        self._clock_wall()
        self.save(final=True)

    def _start(self, progress: bool, callback) -> None:
        # A callback sees every step, so every step is a sync point; otherwise the GPU runs
        # ahead of Python by up to SYNC_EVERY_CUDA steps.
        self.sync_every = 1 if (self.device.type != "cuda" or callback is not None) else SYNC_EVERY_CUDA
        self.bar, self.postfix = None, {}
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=self.config.steps, initial=self.step, desc=self.config.label(), mininterval=0.5,
                            file=sys.stderr, dynamic_ncols=True)
        self.started = time.perf_counter()
        self.start_step = self.last_checkpoint = self.step
        self.checkpoint_clock = time.monotonic()

    def _clock_wall(self) -> None:
        now = time.perf_counter()
        self.wall, self.started = self.wall + now - self.started, now

    def _checkpoint_due(self) -> bool:
        every = self.config.checkpoint_every
        if self.out is None or every == 0 or self.step == self.start_step:
            return False
        if every is None:
            return (self.step - self.last_checkpoint >= CHECKPOINT_STEPS
                    or time.monotonic() - self.checkpoint_clock >= CHECKPOINT_SECONDS)
        return self.step % every == 0

    def _checkpoint_or_stop(self) -> bool:
        """Checkpoint before the step (when the run has a folder); after a signal, end the run.
        False when the losses still pending (CUDA) show a divergence: the run ends there, with
        no checkpoint of non-finite parameters."""
        if not self._flush():
            return False
        self._clock_wall()
        if self.out is not None:
            self.checkpoint()
        self.last_checkpoint, self.checkpoint_clock = self.step, time.monotonic()
        if self.signal is not None:
            self.status = "interrupted"
            raise Interrupted(self.signal)
        return True

    def _report(self, step: int, lr: float, measured: dict, callback) -> bool:
        """Show the step on the bar and to the callback; True if a goal is reached."""
        cfg = self.config
        info = {"step": step, "loss": self.rec.last("loss"), "accuracy": self.rec.last("accuracy"), **measured}
        if measured:
            self.postfix = {"S": f"{info['sharpness']:.4g}", "thr": f"{info['threshold']:.4g}"}
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{info['loss']:.4g}", **self.postfix, refresh=False)
            self.bar.update(step + 1 - self.bar.n)
        if callback is not None:
            callback({**info, "lr": lr})
        return (cfg.loss_goal is not None and info["loss"] <= cfg.loss_goal) or (
            cfg.acc_goal is not None and info["accuracy"] >= cfg.acc_goal)


class _stop_on_signals:
    """While a run trains in the main thread, SIGTERM and SIGINT ask it to stop cleanly
    before its next step; a second SIGINT interrupts at once. Earlier handlers come back after."""

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self, trainer: _Trainer):
        self.trainer, self.previous = trainer, {}

    def _handle(self, signum, frame):
        if self.trainer.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.trainer.signal = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                num = getattr(signal, name, None)
                if num is not None:
                    self.previous[num] = signal.signal(num, self._handle)
        return self

    def __exit__(self, *exc):
        for num, handler in self.previous.items():
            signal.signal(num, handler)
        return False


def _to_cpu(obj):
    return _map_tensors(obj, lambda t: t.detach().cpu().clone())


def _to_device(obj, device):
    return _map_tensors(obj, lambda t: t.to(device))


def _map_tensors(obj, fn):
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def _run(trainer: _Trainer, progress: bool, callback) -> Run:
    with _stop_on_signals(trainer):
        trainer.run(progress=progress, callback=callback)
    return Run(config=trainer.config, status=trainer.status, metrics=trainer.rec.arrays(), path=trainer.out,
               info=trainer.info(), _final=trainer.final_params())


def train(config: RunConfig, *, out=None, progress: bool = True, callback=None) -> Run:
    """Train from scratch with ``config``; returns the ``Run``.

    out: a folder for run.json, metrics.npz, final.pt and checkpoints (created; files of
    an earlier run there are replaced), or None to keep the run in memory only.
    callback(info): called at every step with keys step, loss, accuracy, lr and, at
    tracking steps, sharpness, threshold, distance (live plots). Raising in it interrupts
    the run (status "interrupted", resumable from the last checkpoint).
    """
    if not isinstance(config, RunConfig):
        raise ValueError(f"config must be a RunConfig, got {type(config).__name__}")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for name in (METRICS, FINAL, CHECKPOINT):
            (out / name).unlink(missing_ok=True)
    trainer = _Trainer(config, out)
    trainer.save()
    return _run(trainer, progress, callback)


def resume(path, *, progress: bool = True, callback=None) -> Run:
    """Continue the run in folder ``path`` from its last checkpoint (from scratch if it has
    none). A finished run is returned as it is. On the CPU the result equals, bit for bit,
    the run that was never interrupted."""
    run = load_run(path)
    if run.status in DONE:
        return run
    trainer = _Trainer(run.config, Path(path))
    if (trainer.out / CHECKPOINT).is_file():
        state = load_checkpoint(trainer.out / CHECKPOINT)
        trainer.restore(state, run.metrics)
    else:
        for name in (METRICS, FINAL):
            (trainer.out / name).unlink(missing_ok=True)
    return _run(trainer, progress, callback)


def cached_run(config: RunConfig, *, progress: bool = True, callback=None) -> Run:
    """The run of ``config`` from the cache (``eosteach.config.runs_dir()``) if a finished
    one exists there; an interrupted one is resumed; otherwise it is trained and cached.
    With a callback, a cached run replays its records through it (the step info only)."""
    if not isinstance(config, RunConfig):
        raise ValueError(f"config must be a RunConfig, got {type(config).__name__}")
    path = cache_path(config)
    if (path / RUN_JSON).is_file():
        try:
            run = load_run(path)
        except (ValueError, KeyError, OSError, json.JSONDecodeError):
            run = None
        if run is not None and run.config == config:
            if run.status in DONE and (path / FINAL).is_file():
                if callback is not None:
                    _replay(run, callback)
                return run
            if run.status in ("running", "interrupted"):
                return resume(path, progress=progress, callback=callback)
    return train(config, out=path, progress=progress, callback=callback)


def _replay(run: Run, callback) -> None:
    m = run.metrics
    eig = {int(s): i for i, s in enumerate(m["eig_step"])}
    for i, step in enumerate(m["step"]):
        info = {"step": int(step), "loss": float(m["loss"][i]), "accuracy": float(m["accuracy"][i]),
                "lr": float(m["lr"][i])}
        j = eig.get(int(step))
        if j is not None:
            info.update(sharpness=float(m["sharpness"][j]), threshold=float(m["threshold"][j]),
                        distance=float(m["distance"][j]))
        callback(info)
