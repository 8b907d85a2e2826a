"""Training runs with sharpness tracking: the experiment of Cohen et al. (ICLR 2021).

``train(RunConfig(...))`` trains a network full-batch (or mini-batch SGD) and records

    every step         step, loss, accuracy, lr, time (= sum of the step sizes so far)
    every eig_every    eig_step, sharpness S = lambda_1(H), eigenvalues (top eig_k),
                       threshold (the method's own, at the current lr), distance ||theta - theta_0||,
                       preconditioned_sharpness (adam, rmsprop), full_loss / full_accuracy (sgd),
                       batch_sharpness (with ``batch_sharpness=k``: the mean over k random
                       mini-batches of g_B^T H_B g_B / ||g_B||^2, ``hessian.batch_sharpness``)
    every test_every   test_step, test_loss, test_accuracy

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
is the same) and the Hessian products reuse it; one buffer holds the Lanczos vectors for
the whole run.
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

#: Lanczos settings for tracking: relative residual tolerance and product cap. The error of
#: a Ritz value is about residual^2 / gap, so a residual of 3e-3 |lambda| leaves the
#: sharpness accurate to ~1e-5..1e-4 relative (measured against tol 1e-7 at the edge of
#: stability: 2e-5), with ~5 warm-started products instead of ~7 at 1e-3.
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
        """The network at the final parameters (float dtype of the run)."""
        from . import hessian, models

        dev = _config.device(device)
        net = _make_net(self.config, self.n_classes, dev)
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


def _make_net(config: RunConfig, n_classes: int, device, input_dim: int = 3072):
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


def _load_data(config: RunConfig, device):
    from . import data

    kwargs = dict(n_train=config.n_train, classes=config.classes, loss=config.loss,
                  device=device, dtype=DTYPES[config.dtype])
    if config.data == "synthetic":
        kwargs["seed"] = config.seed
    return data.load_dataset(config.data, **kwargs)


class _Trainer:
    """The state of one run between steps, and the loop that advances it."""

    def __init__(self, config: RunConfig, out: Path | None):
        from . import losses

        self.config, self.out = config, out
        self.device = _config.device(config.device)
        self.dataset = _load_data(config, self.device)
        self.x, self.y = self.dataset.x_train, self.dataset.y_train
        self.labels = self.y if self.y.ndim == 1 else self.y.argmax(dim=1)
        self.loss_fn = losses.get_loss(config.loss)
        self.net = _make_net(config, self.dataset.n_classes, self.device, self.dataset.input_dim)
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
        self.v0 = self.v0_pre = self.workspace = None
        self.step, self.clock = 0, 0.0
        self.status, self.stop_step = "running", None
        self.records = {k: [] for k in ("step", "loss", "accuracy", "lr", "time")}
        self.eig = {k: [] for k in ("eig_step", "sharpness", "eigenvalues", "threshold", "distance",
                                    "n_products")}
        if config.opt in optim.ADAPTIVE:
            self.eig["preconditioned_sharpness"] = []
        if config.opt == "sgd":
            self.eig["full_loss"], self.eig["full_accuracy"] = [], []
        self.bs_gen = None
        if config.batch_sharpness is not None:
            self.eig["batch_sharpness"] = []
            self.bs_gen = torch.Generator().manual_seed(config.seed + 2)
        self.tests = {k: [] for k in ("test_step", "test_loss", "test_accuracy")}
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
            self.records["step"].append(step)
            self.records["loss"].append(loss)
            self.records["accuracy"].append(correct / n)
            self.records["lr"].append(lr)
            self.records["time"].append(clock)
        self.pending = []
        return ok

    def _track(self, step: int, gradient=None) -> dict:
        """Record the sharpness (and the rest) at the current parameters. ``gradient``: the
        training step's create_graph=True full-batch gradient, reused by the products."""
        from . import hessian

        cfg = self.config
        n = self.n_params
        if self.v0 is None:  # a seeded random start: identical runs give identical sharpness
            gen = torch.Generator().manual_seed(cfg.seed + 1)
            self.v0 = torch.randn(n, generator=gen, dtype=self.params[0].dtype).to(self.device)
        if self.workspace is None:  # Lanczos vectors: one buffer for the whole run
            self.workspace = torch.empty(min(32, n), n, dtype=torch.float64, device=self.device)
        tol = EIG_TOL if cfg.eig_k == 1 else EIG_TOL_TOP_K
        res = hessian.sharpness(self.net, self.loss_fn, self.x, self.y, k=cfg.eig_k, v0=self.v0,
                                tol=tol, max_products=EIG_MAX_PRODUCTS * cfg.eig_k, gradient=gradient,
                                workspace=self.workspace)
        self.v0 = res.eigenvectors.detach()
        values = np.full(cfg.eig_k, np.nan)
        got = res.eigenvalues.detach().cpu().double().numpy()
        values[: len(got)] = got
        with torch.no_grad():
            diff = torch._foreach_sub(self.params, self.theta0)
            distance = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(diff))))
        info = {"sharpness": float(values[0]), "threshold": float(self.opt.threshold()), "distance": distance}
        self.eig["eig_step"].append(step)
        self.eig["sharpness"].append(info["sharpness"])
        self.eig["eigenvalues"].append(values)
        self.eig["threshold"].append(info["threshold"])
        self.eig["distance"].append(distance)
        products = res.n_products
        if "preconditioned_sharpness" in self.eig:
            precond = self.opt.preconditioner()
            value = math.nan
            if precond is not None:
                if self.v0_pre is None:
                    self.v0_pre = self.v0[:, 0].clone()
                pre = hessian.preconditioned_sharpness(self.net, self.loss_fn, self.x, self.y, precond,
                                                       v0=self.v0_pre, tol=EIG_TOL, max_products=EIG_MAX_PRODUCTS,
                                                       gradient=gradient, workspace=self.workspace)
                self.v0_pre = pre.eigenvectors.detach()
                value, products = pre.top, products + pre.n_products
            self.eig["preconditioned_sharpness"].append(value)
            info["preconditioned_sharpness"] = value
        self.eig["n_products"].append(products)
        if "full_loss" in self.eig:
            with torch.no_grad():
                out = self.net(self.x)
                self.eig["full_loss"].append(float(self.loss_fn(out, self.y)))
                self.eig["full_accuracy"].append(float((out.argmax(1) == self.labels).double().mean()))
        if "batch_sharpness" in self.eig:
            b = cfg.batch_size or self.x.shape[0]
            value = hessian.batch_sharpness(self.net, self.loss_fn, self.x, self.y, b, cfg.batch_sharpness,
                                            generator=self.bs_gen)
            self.eig["batch_sharpness"].append(value)
            info["batch_sharpness"] = value
        if cfg.opt == "flow":
            self.opt.sharpness = info["sharpness"]
        return info

    @torch.no_grad()
    def _test(self, step: int) -> None:
        out = self.net(self.dataset.x_test)
        y = self.dataset.y_test
        labels = y if y.ndim == 1 else y.argmax(dim=1)
        self.tests["test_step"].append(step)
        self.tests["test_loss"].append(float(self.loss_fn(out, y)))
        self.tests["test_accuracy"].append(float((out.argmax(1) == labels).double().mean()))

    def metrics(self) -> dict:
        out = {k: np.asarray(v, dtype=np.int64 if k == "step" else np.float64) for k, v in self.records.items()}
        for k, v in self.eig.items():
            if k == "eigenvalues":
                out[k] = np.asarray(v, dtype=np.float64).reshape(len(v), self.config.eig_k)
            else:
                out[k] = np.asarray(v, dtype=np.int64 if k in ("eig_step", "n_products") else np.float64)
        for k, v in self.tests.items():
            out[k] = np.asarray(v, dtype=np.int64 if k == "test_step" else np.float64)
        return out

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
        files.atomic_save_npz(self.out / METRICS, **self.metrics())
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
        for group, key in ((self.records, "step"), (self.eig, "eig_step"), (self.tests, "test_step")):
            keep = int(np.sum(metrics.get(key, np.zeros(0)) < self.step))
            for k in group:
                group[k] = list(metrics[k][:keep]) if k in metrics else []

    # ---------------------------------------------------------------- the loop
    def _checkpoint_due(self, steps_since: int, seconds_since: float) -> bool:
        every = self.config.checkpoint_every
        if self.out is None or every == 0:
            return False
        if every is None:
            return steps_since >= CHECKPOINT_STEPS or seconds_since >= CHECKPOINT_SECONDS
        return self.step % every == 0

    def run(self, *, progress: bool, callback) -> None:
        cfg = self.config
        sync_every = 1 if (self.device.type != "cuda" or callback is not None) else SYNC_EVERY_CUDA
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, desc=cfg.label(), mininterval=0.5,
                       file=sys.stderr, dynamic_ncols=True)
        postfix = {}
        started = time.perf_counter()
        start_step = last_checkpoint = self.step
        checkpoint_clock = time.monotonic()
        try:
            while self.step < cfg.steps:
                step = self.step
                if self.signal is not None or (step > start_step and self._checkpoint_due(
                        step - last_checkpoint, time.monotonic() - checkpoint_clock)):
                    self._flush()
                    self.wall += time.perf_counter() - started
                    started = time.perf_counter()
                    if self.out is not None:
                        self.checkpoint()
                    last_checkpoint, checkpoint_clock = step, time.monotonic()
                    if self.signal is not None:
                        self.status = "interrupted"
                        raise Interrupted(self.signal)
                lr = self.opt.lr = self.schedule(step)
                x, y = self._batch()
                out = self.net(x)
                loss = self.loss_fn(out, y)
                tracking = cfg.eig_every is not None and step % cfg.eig_every == 0
                # At a full-batch tracking step, the sharpness is measured at these very
                # parameters on this very batch: keep the gradient's graph for the Hessian
                # products (one forward and one backward pass fewer per tracking point).
                # The gradient's values are the same either way.
                reuse = tracking and cfg.batch_size is None
                grads = torch.autograd.grad(loss, self.params, create_graph=reuse)
                labels = self.labels if cfg.batch_size is None else (y if y.ndim == 1 else y.argmax(dim=1))
                correct = (out.detach().argmax(dim=1) == labels).sum()
                self.pending.append((step, lr, self.clock, loss.detach(), correct))

                if tracking or len(self.pending) >= sync_every or step == cfg.steps - 1:
                    if not self._flush():
                        break
                    info = {"step": step, "loss": self.records["loss"][-1], "accuracy": self.records["accuracy"][-1]}
                    if tracking:
                        info.update(self._track(step, grads if reuse else None))
                        postfix = {"S": f"{info['sharpness']:.4g}", "thr": f"{info['threshold']:.4g}"}
                    if cfg.test_every and step % cfg.test_every == 0:
                        self._test(step)
                    if bar is not None:
                        bar.set_postfix(loss=f"{info['loss']:.4g}", **postfix, refresh=False)
                        bar.update(step + 1 - bar.n)
                    if callback is not None:
                        info["lr"] = lr
                        callback(info)
                    if (cfg.loss_goal is not None and info["loss"] <= cfg.loss_goal) or (
                        cfg.acc_goal is not None and info["accuracy"] >= cfg.acc_goal
                    ):
                        self.status, self.stop_step = "goal_reached", step
                        break
                elif cfg.test_every and step % cfg.test_every == 0:
                    self._test(step)
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
            self.wall += time.perf_counter() - started
            self.save()
            raise
        finally:
            if bar is not None:
                bar.close()
        if self.status == "diverged":
            self.step = self.stop_step
        self.wall += time.perf_counter() - started
        self.save(final=True)


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
    return Run(config=trainer.config, status=trainer.status, metrics=trainer.metrics(), path=trainer.out,
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
