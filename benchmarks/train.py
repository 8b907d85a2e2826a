"""Benchmark of the training runner (``eosteach.runs``): does bookkeeping cost speed?

Everything runs in one process, on the same model and data: fc-tanh 3072-200-200-10
(PyTorch's default initialisation, seed 0), the first ``--n-train`` CIFAR-10 training
images (default 5,000: cifar10-5k, the setup of Cohen et al.; standardised, one-hot
targets, MSE = mean of 1/2 ||f(x) - e_y||^2), GD at eta = 0.02.

Rows:
  (a) a bare ten-line PyTorch full-batch loop (torch.optim.SGD, zero_grad/backward/step);
  (b) the runner, tracking off (``eig_every=None``): every step's loss and accuracy recorded;
  (c) the runner with the sharpness every 50 steps (Lanczos, warm-started).
Each is timed ``--repeats`` times, interleaved, and the fastest repeat is kept (the
least disturbed by other processes: on a shared 2-core machine single runs spread by
10-20%). The runner's time is its training loop (``run.info["wall_time_s"]``), not the
loading of the data.

    python benchmarks/train.py [--n-train 5000] [--steps 200] [--track-steps 600] [--repeats 3] [--device auto]

The tracking overhead depends on the number of examples: a Hessian-vector product costs
about as much as a training step (both scale with the examples), but the Lanczos vector
arithmetic (vectors of all 656,810 parameters, float32 at the runner's tolerance) does
not, so with fewer examples it is a larger share. ``--n-train 1000`` (the lesson scale) shows that case.

Prints a table and, as its last line, exactly:
    train-benchmark: runner_vs_bare=<x> tracking_overhead=<x> tracking_overhead_eos=<x>
where runner_vs_bare = steps/s of (b) / steps/s of (a) (target >= 0.95),
tracking_overhead = time of (c) / time of (b') over the same steps, and
tracking_overhead_eos the same ratio over the steps from the first tracking point at which
S >= 2/eta to the end (the edge of stability; "n/a" when S does not get there), timed per
step through the runner's callback. ``--n-train 1000 --track-steps 1000`` covers both
phases (eta = 0.02: S first reaches 2/eta near step 350).

``--from-step S`` times the edge of stability from a checkpoint instead, as a run resumed
there pays for it: one tracked run is trained to step S, checkpointed there (in
``--checkpoint-dir``, reused when it already holds that checkpoint; a temporary folder
otherwise), and each repeat resumes two copies of it for ``--track-steps`` more steps, one
with the sharpness every 50 steps (warm-started from the checkpoint's Ritz vector) and one
without. It prints the products per point and, as its last line,
    train-benchmark-from-checkpoint: step=<S> sharpness_at_step=<S/(2/eta)> tracking_overhead=<x>
where tracking_overhead = seconds of the tracked copy / seconds of the untracked one over
steps S+1 .. S+track_steps (the fastest repeat of each). For cifar10-5k at eta = 0.02,
whose sharpness first reaches 2/eta at step 1000: ``--from-step 1100 --track-steps 1000``.
Without a CIFAR-10 copy it falls back to SYNTHETIC data of the same shape (and says so).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from eosteach import config, data, files, losses, models, runs


def bare_loop(x, y, steps: int, lr: float, dtype, device) -> float:
    """Seconds for ``steps`` GD steps of the simplest PyTorch loop."""
    model = models.make_model("fc-tanh", width=200, depth=2, seed=0, dtype=dtype, device=device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = losses.mse(model(x), y)
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - start


def runner(cfg: runs.RunConfig, clock=None) -> runs.Run:
    """A finished run; its time is ``run.info["wall_time_s"]``, the training loop alone.
    ``clock``: a list that receives the wall-clock second at which each step ended (the
    runner's per-step callback), so that a phase of the run can be timed."""
    callback = None if clock is None else (lambda info: clock.append(time.perf_counter()))
    run = runs.train(cfg, progress=False, callback=callback)
    assert run.status == "finished", run.status
    return run


def phase_seconds(clock: list, start: int, stop: int) -> float:
    """Seconds from the end of step ``start - 1`` to the end of step ``stop - 1``."""
    return clock[stop - 1] - (clock[start - 1] if start > 0 else clock[0] - (clock[1] - clock[0]))


class _StopHere(Exception):
    """Raised by the callback to end the run that makes the checkpoint (resumable there)."""


def checkpointed_run(cfg: runs.RunConfig, step: int, folder: Path) -> runs.Run:
    """The run of ``cfg`` in ``folder``, checkpointed before ``step`` and stopped there (status
    "interrupted"): trained unless ``folder`` already holds it."""
    if (folder / runs.CHECKPOINT).is_file() and (folder / runs.RUN_JSON).is_file():
        run = runs.load_run(folder)
        if run.config == cfg and runs.load_checkpoint(folder / runs.CHECKPOINT)["step"] == step:
            return run
    def stop(info):
        if info["step"] == step:
            raise _StopHere
    try:
        runs.train(cfg, out=folder, progress=False, callback=stop)
    except _StopHere:
        pass
    return runs.load_run(folder)


def resumed_seconds(folder: Path, into: Path, eig_every, steps: int):
    """Seconds for the ``steps`` steps after the checkpoint's first one, resuming a copy of
    ``folder`` (at ``into``) with the sharpness every ``eig_every`` steps; and the run."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(folder, into)
    info = json.loads((into / runs.RUN_JSON).read_text())
    info["config"]["eig_every"] = eig_every
    files.atomic_write_json(into / runs.RUN_JSON, info)
    clock = []
    run = runs.resume(into, progress=False, callback=lambda _: clock.append(time.perf_counter()))
    assert run.status == "finished", run.status
    return clock[steps] - clock[0], run


def from_checkpoint(args, base: dict) -> None:
    """The ``--from-step`` benchmark (see the module docstring)."""
    start, steps = args.from_step, args.track_steps
    cfg = runs.RunConfig(**base, steps=start + steps + 1, eig_every=50, checkpoint_every=start)
    folder = Path(args.checkpoint_dir) if args.checkpoint_dir else Path(tempfile.mkdtemp(prefix="eosteach-bench-"))
    made = time.perf_counter()
    made_run = checkpointed_run(cfg, start, folder)
    m = made_run.metrics
    ratio = m["sharpness"][m["eig_step"] <= start] / m["threshold"][m["eig_step"] <= start]
    crossed = ratio >= 1
    first = f"step {int(m['eig_step'][crossed.argmax()])}" if crossed.any() else "no step (before the crossing)"
    print(f"checkpoint at step {start} ({time.perf_counter() - made:.0f} s to make or load): "
          f"S = {ratio[-1]:.3f} x 2/eta there; S first >= 2/eta at {first}")
    work = Path(tempfile.mkdtemp(prefix="eosteach-bench-copies-"))
    off, tracked = [], []
    try:
        for _ in range(args.repeats):
            off.append(resumed_seconds(folder, work / "off", None, steps)[0])
            seconds, run = resumed_seconds(folder, work / "tracked", 50, steps)
            tracked.append(seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.checkpoint_dir:
            shutil.rmtree(folder, ignore_errors=True)
    m = run.metrics
    after = m["eig_step"] > start
    products = m["n_products"][after].tolist()
    ratios = (m["sharpness"][after] / m["threshold"][after]).round(3).tolist()
    print(f"steps {start + 1}-{start + steps}: tracking off {min(off):.2f} s, sharpness every 50 steps "
          f"{min(tracked):.2f} s (all repeats: off {[round(t, 2) for t in off]}, "
          f"tracked {[round(t, 2) for t in tracked]})")
    print(f"S / (2/eta) at the points: {ratios}")
    print(f"Lanczos products per point: {products} (mean {sum(products) / len(products):.1f})")
    print(f"train-benchmark-from-checkpoint: step={start} sharpness_at_step={ratio[-1]:.3f} "
          f"tracking_overhead={min(tracked) / min(off):.3f}")


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="GD steps for rows (a) and (b)")
    parser.add_argument("--track-steps", type=int, default=600, help="steps for the tracking comparison (b') vs (c)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (the fastest is kept)")
    parser.add_argument("--n-train", type=int, default=5000, help="CIFAR-10 training images (5000 = cifar10-5k)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--from-step", type=int, default=None,
                        help="time the --track-steps steps after a checkpoint at this step (see the docstring)")
    parser.add_argument("--checkpoint-dir", default=None, help="where --from-step keeps its checkpoint")
    args = parser.parse_args(argv)
    if args.from_step is not None and (args.from_step < 1 or args.from_step % 50):
        parser.error(f"--from-step must be a positive multiple of 50 (a tracking step), got {args.from_step}")

    device = config.device(args.device)
    dtype = runs.DTYPES[args.dtype]
    name = "cifar10"
    try:
        ds = data.load_cifar10(args.n_train, download=False, device=device, dtype=dtype)
    except Exception as error:  # no local copy: same shapes, clearly labelled
        print(f"CIFAR-10 not available ({error}); using SYNTHETIC data (not CIFAR-10)")
        name = "synthetic"
        ds = data.synthetic(args.n_train, device=device, dtype=dtype)
    base = dict(data=name, n_train=args.n_train, arch="fc-tanh", width=200, depth=2, lr=0.02,
                device=str(device), dtype=args.dtype)
    print(f"fc-tanh 200-200, {ds.name}, GD eta=0.02, {device}, {args.dtype}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    # Warm-up: the first double-backward pass of a process costs ~30 steps, once.
    runs.train(runs.RunConfig(**base, steps=5, eig_every=2), progress=False)
    if args.from_step is not None:
        return from_checkpoint(args, base)
    bare_loop(ds.x_train, ds.y_train, 5, 0.02, dtype, device)
    bare, plain, off, tracked, clocks = [], [], [], [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(ds.x_train, ds.y_train, args.steps, 0.02, dtype, device))
        plain.append(runner(runs.RunConfig(**base, steps=args.steps, eig_every=None)).info["wall_time_s"])
        clock_off, clock_tracked = [], []
        off.append(runner(runs.RunConfig(**base, steps=args.track_steps, eig_every=None), clock_off).info["wall_time_s"])
        tracked_run = runner(runs.RunConfig(**base, steps=args.track_steps, eig_every=50), clock_tracked)
        tracked.append(tracked_run.info["wall_time_s"])
        clocks.append((clock_off, clock_tracked))
    products = tracked_run.metrics["n_products"].tolist()
    # The two phases of the tracked run: before and after the sharpness first reaches 2/eta
    # (the edge of stability, where the top eigenvectors move and a warm start helps least).
    m = tracked_run.metrics
    above = m["sharpness"] >= m["threshold"]
    crossing = int(m["eig_step"][above.argmax()]) if above.any() else None
    t_bare, t_plain, t_off, t_tracked = min(bare), min(plain), min(off), min(tracked)
    print(f"{'row':<44}{'steps':>7}{'seconds':>10}{'steps/s':>10}")
    rows = [("(a) bare PyTorch loop", args.steps, t_bare),
            ("(b) runner, tracking off", args.steps, t_plain),
            ("(b') runner, tracking off", args.track_steps, t_off),
            ("(c) runner, sharpness every 50 steps", args.track_steps, t_tracked)]
    for label, steps, seconds in rows:
        print(f"{label:<44}{steps:>7}{seconds:>10.2f}{steps / seconds:>10.1f}")
    runner_vs_bare = t_bare / t_plain
    overhead = t_tracked / t_off
    print(f"all repeats (s): bare {[round(t, 2) for t in bare]}, runner {[round(t, 2) for t in plain]}, "
          f"off {[round(t, 2) for t in off]}, tracked {[round(t, 2) for t in tracked]}")
    print(f"Lanczos products per tracking point in (c): {products} (mean {sum(products) / len(products):.1f})")
    overhead_eos = "n/a"
    if crossing is not None and crossing < args.track_steps - 1:
        def phase_overhead(start, stop):  # the fastest repeat of each arm over the phase
            return (min(phase_seconds(c, start, stop) for _, c in clocks)
                    / min(phase_seconds(c, start, stop) for c, _ in clocks))
        before, after = products[: int(above.argmax())], products[int(above.argmax()):]
        print(f"phases of (c): sharpening, steps 0-{crossing - 1}: overhead {phase_overhead(0, crossing):.3f}, "
              f"{sum(before) / max(len(before), 1):.1f} products per point; edge of stability (S first >= 2/eta "
              f"at step {crossing}), steps {crossing}-{args.track_steps - 1}: overhead "
              f"{phase_overhead(crossing, args.track_steps):.3f}, {sum(after) / len(after):.1f} products per point")
        overhead_eos = f"{phase_overhead(crossing, args.track_steps):.3f}"
    else:
        print("phases of (c): the sharpness does not reach 2/eta in these steps (sharpening only)")
    print(f"train-benchmark: runner_vs_bare={runner_vs_bare:.3f} tracking_overhead={overhead:.3f} "
          f"tracking_overhead_eos={overhead_eos}")


if __name__ == "__main__":
    main()
