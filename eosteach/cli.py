"""The ``eosteach`` command: train with sharpness tracking, plot runs, resume runs.

    eosteach run --data cifar10 --n-train 1000 --arch fc-tanh --loss mse --opt gd \\
                 --lr 0.02 --eig-every 50 --steps 1500 --seed 0 --out runs/demo
    eosteach plot runs/demo [more run folders] -o figure.png
    eosteach resume runs/demo

Bad settings print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is ONE line on stderr (exit code 2), not the usage block."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _Usage(Exception):
    """A bad setting found after parsing (one line, exit code 2)."""


def _optional(kind):
    def parse(text):
        return None if text.lower() in ("none", "") else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _classes(text):
    if text.lower() in ("none", "all", ""):
        return None
    if text.isdigit():
        return int(text)
    return tuple(part.strip() for part in text.split(","))


def _run_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="train a network, tracking the sharpness, and save the run folder",
        description=(
            "Train a network full-batch (or mini-batch SGD) and record, every step, the train loss "
            "and accuracy, and every --eig-every steps the sharpness (top Hessian eigenvalue, Lanczos), "
            "the method's stability threshold and ||theta - theta_0||. The run folder holds run.json "
            "(settings, versions, status) and metrics.npz. Without --out the run goes to the cache "
            "($EOSTEACH_RUNS or the platform cache) and an identical finished run is reused."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _run_options(p)
    p.add_argument_group("machine and output").add_argument(
        "--out", type=Path, default=None, help="run folder (default: the run cache)")
    p.set_defaults(func=_cmd_run)


def _run_options(p) -> None:
    """Every RunConfig setting as an option of ``p`` (shared by run and sweep)."""
    from . import data, losses, models, optim, runs

    d = runs.RunConfig()
    g = p.add_argument_group("data and model")
    g.add_argument("--data", default=d.data, help=f"dataset: {', '.join(data.DATASETS)} (synthetic = offline stand-in, NOT CIFAR-10)")
    g.add_argument("--n-train", type=int, default=d.n_train, help="number of training examples (the first n; 5000 = cifar10-5k)")
    g.add_argument("--classes", type=_classes, default=d.classes, help="all classes (none), the first k (an int), or names such as cat,dog")
    g.add_argument("--arch", default=d.arch, help=f"network: {', '.join(models.ARCHS)}")
    g.add_argument("--width", type=int, default=d.width, help="hidden width (fc) or channels (cnn)")
    g.add_argument("--depth", type=int, default=d.depth, help="number of hidden layers")
    g.add_argument("--init-scale", type=float, default=d.init_scale, help="multiply the initial parameters by this factor")
    g.add_argument("--loss", default=d.loss, help=f"loss: {', '.join(losses.LOSSES)} (mse = mean of 1/2 ||f(x) - e_y||^2)")
    g = p.add_argument_group("optimiser")
    g.add_argument("--opt", default=d.opt, help=f"optimiser: {', '.join(optim.OPTIMIZERS)}")
    g.add_argument("--lr", type=float, default=d.lr, help="step size eta (> 0); for flow, alpha in the RK4 step alpha / sharpness")
    g.add_argument("-b", "--momentum", type=float, default=d.momentum, help="momentum b in [0, 1) (heavy_ball, nesterov, sgd), Adam's beta1")
    g.add_argument("--beta2", type=float, default=d.beta2, help="Adam's beta2, RMSProp's alpha, in [0, 1)")
    g.add_argument("--eps", type=float, default=d.eps, help="Adam / RMSProp epsilon")
    g.add_argument("--batch-size", type=_optional(int), default=d.batch_size, help="mini-batch size (sgd only)")
    g.add_argument("--lr-drop-step", type=_optional(int), default=d.lr_drop_step, help="multiply eta by --lr-drop-factor from this step on")
    g.add_argument("--lr-drop-factor", type=float, default=d.lr_drop_factor, help="factor of the learning-rate drop")
    g = p.add_argument_group("budget, goals and tracking")
    g.add_argument("--steps", type=int, default=d.steps, help="step budget")
    g.add_argument("--loss-goal", type=_optional(float), default=d.loss_goal, help="stop when the train loss is <= this")
    g.add_argument("--acc-goal", type=_optional(float), default=d.acc_goal, help="stop when the train accuracy is >= this (in (0, 1], e.g. 0.99)")
    g.add_argument("--eig-every", type=_optional(int), default=d.eig_every, help="compute the sharpness every k steps (none = never)")
    g.add_argument("--eig-k", type=int, default=d.eig_k, help="number of top Hessian eigenvalues to track")
    g.add_argument("--test-every", type=_optional(int), default=d.test_every, help="test loss and accuracy every k steps")
    g.add_argument("--checkpoint-every", type=_optional(int), default=d.checkpoint_every, help="checkpoint every k steps (0: never; none: every 300 steps or 60 s, whichever comes first) for 'eosteach resume'")
    g = p.add_argument_group("machine and output")
    g.add_argument("--seed", type=int, default=d.seed, help="seed of the initialisation and the batch order")
    g.add_argument("--device", default=d.device, help="auto (cuda if available), cpu, cuda, cuda:N")
    g.add_argument("--dtype", default=d.dtype, help="float32 or float64")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


#: Options that take a comma list of their own, so they cannot be a sweep axis.
_NOT_AXES = ("classes",)


def _grid_of(kind, name):
    """An argparse type: "a,b,c" -> [kind(a), kind(b), kind(c)] (a sweep axis)."""

    def parse(text):
        parts = text.split(",")
        if any(not part.strip() for part in parts):
            raise argparse.ArgumentTypeError(f"--{name} {text!r}: empty value in the comma list")
        try:
            return [kind(part.strip()) if kind is not None else part.strip() for part in parts]
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"--{name} {text!r}: not a comma list of values of that type") from None

    parse.__name__ = "comma list"
    return parse


def _sweep_parser(sub) -> None:
    from . import runs

    p = sub.add_parser(
        "sweep",
        help="train a grid of runs on Dask (a comma list makes an option a grid axis)",
        description=(
            "Train the Cartesian product of the comma lists given to any 'eosteach run' option, e.g. "
            "--lr 0.01,0.0133,0.0167,0.02 --seed 0,1, one run folder each under --out, named by the "
            "settings that vary. Without --scheduler a LocalCluster runs one single-threaded worker "
            "per core on this machine; --scheduler tcp://HOST:PORT uses an existing Dask cluster "
            "(the run folders must be on a filesystem every worker sees). Running the same sweep "
            "again returns finished runs at once and resumes the others from their checkpoints."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _run_options(p)
    fields = set(runs.RunConfig.__dataclass_fields__) - set(_NOT_AXES)
    for action in p._actions:
        if action.dest in fields:
            action.type = _grid_of(action.type, action.option_strings[0].lstrip("-"))
    g = p.add_argument_group("sweep")
    g.add_argument("--out", type=Path, required=True, help="sweep folder (one run folder per grid point)")
    g.add_argument("--scheduler", default=None, help="address of a Dask scheduler, tcp://HOST:PORT (default: a LocalCluster)")
    g.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes (default: one per core)")
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args) -> int:
    from . import runs, sweeps

    fields = list(runs.RunConfig.__dataclass_fields__)
    values = {k: v for k, v in vars(args).items() if k in fields}
    base = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in values.items()}
    axes = {k: base.pop(k) for k, v in list(base.items()) if isinstance(v, list)}
    configs = sweeps.grid(base, **axes)
    if args.workers is not None and args.workers < 1:
        raise _Usage(f"--workers must be an integer >= 1, got {args.workers}")
    client = sweeps.connect(args.scheduler) if args.scheduler else None
    if client is None and args.workers:
        client = sweeps.local_client(args.workers)
    try:
        results = sweeps.sweep(configs, args.out, client=client, progress=not args.no_progress)
    finally:
        if client is not None:
            cluster = client.cluster if args.scheduler is None else None
            client.close()
            if cluster is not None:
                cluster.close()
    print(sweeps.summary_table(results))
    return 0 if all(r.status != sweeps.FAILED for r in results) else 1


def _config_from(args):
    from . import runs

    fields = {f for f in runs.RunConfig.__dataclass_fields__}
    return runs.RunConfig(**{k: v for k, v in vars(args).items() if k in fields})


def _summary(run) -> str:
    m = run.metrics
    parts = [f"{run.status}: {len(m['step'])} steps"]
    if len(m["loss"]):
        parts.append(f"train loss {m['loss'][-1]:.4g}, accuracy {m['accuracy'][-1]:.3f}")
    if len(m["sharpness"]):
        parts.append(f"sharpness {m['sharpness'][-1]:.4g} (threshold {m['threshold'][-1]:.4g})")
    parts.append(f"run folder: {run.path}")
    return "; ".join(parts)


def _cmd_run(args) -> int:
    from . import runs

    config = _config_from(args)
    progress = not args.no_progress
    if args.out is None:
        run = runs.cached_run(config, progress=progress)
    elif (args.out / runs.RUN_JSON).is_file():
        existing = runs.load_run(args.out)
        if existing.config != config:
            raise _Usage(f"{args.out} holds a run with other settings; choose another --out")
        run = runs.resume(args.out, progress=progress)
    else:
        run = runs.train(config, out=args.out, progress=progress)
    print(_summary(run))
    return 0


def _cmd_resume(args) -> int:
    from . import runs

    run = runs.load_run(args.run_dir)
    if run.status in runs.DONE:
        print(f"nothing to resume: {_summary(run)}")
        return 0
    print(_summary(runs.resume(args.run_dir, progress=not args.no_progress)))
    return 0


def _run_folders(paths) -> list:
    """Each path that holds a run, and for a sweep folder (no run.json of its own) every run
    folder inside it, in name order."""
    from . import runs

    found = []
    for path in paths:
        path = Path(path)
        if (path / runs.RUN_JSON).is_file() or not path.is_dir():
            found.append(path)  # a missing folder is reported by load_run
            continue
        inner = sorted(p for p in path.iterdir() if (p / runs.RUN_JSON).is_file())
        if not inner:
            raise FileNotFoundError(f"no run found in {path} (no {runs.RUN_JSON}, and no run folders inside)")
        found.extend(inner)
    return found


def _cmd_plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from . import plotting, runs

    loaded = [runs.load_run(path) for path in _run_folders(args.run_dirs)]
    plotting.use_style()
    fig = Figure(figsize=(12, 4.5), dpi=100, layout="constrained")
    ax_loss, ax_sharp = fig.subplots(1, 2)
    plotting.loss_and_sharpness(ax_loss, ax_sharp, loaded)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output)
    print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="eosteach",
        description=(
            "Gradient descent at the edge of stability (Cohen et al., ICLR 2021): train networks "
            "while tracking the sharpness, plot runs, resume them. 'eosteach COMMAND --help' "
            "documents each command."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    _run_parser(sub)
    _sweep_parser(sub)
    p = sub.add_parser("plot", help="plot loss and sharpness per step of one or more runs (PNG)",
                       description="Write a PNG in the style of Cohen et al. (2021), Figure 1: training loss "
                                   "(log scale) and sharpness per step, each run's threshold (2/eta for GD) "
                                   "dashed in its colour, one colour per run. A sweep folder plots all its runs.")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders, or sweep folders (all their runs)")
    p.add_argument("-o", "--output", type=Path, default=Path("eosteach-plot.png"), help="PNG file to write")
    p.set_defaults(func=_cmd_plot)
    p = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint",
                       description="Continue the run in RUN_DIR from its last checkpoint (from the start if "
                                   "it has none). On the CPU the result equals the uninterrupted run bit for bit.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_resume)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, _Usage) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"eosteach {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as stop:
        print("eosteach: interrupted (resume with 'eosteach resume RUN_DIR')", file=sys.stderr)
        return 128 + getattr(stop, "signum", 2)  # 130 for Ctrl-C, 143 for SIGTERM
