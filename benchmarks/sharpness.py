"""Benchmark of the sharpness engine (``eosteach.hessian``) against the reference tools.

Measures, in one process, on one model and one data set:

* model: fc-tanh MLP 3072-200-200-10 with biases, PyTorch's default init, seed 0, float32;
* data: the first 5,000 CIFAR-10 training images, features standardised, one-hot targets,
  MSE = mean over examples of 1/2 ||f(x) - e_y||^2 (Cohen et al., 2021);
* two points: the initialisation, and after 200 full-batch GD steps at eta = 0.01;
* reference: float64 Lanczos converged to residual 1e-10 (relative).

Rows, at each point:

  (a) this engine, cold: ``hessian.sharpness`` (Lanczos, retained-graph products), tol 1e-3
      on the eigenvalue's relative error (the certified Kato-Temple rule, its default), with
      its default float32 Lanczos vectors; (a64) the same with float64 vectors;
  (b) this engine, warm-started from the eigenvector computed 50 GD steps earlier (a run's
      tracking interval; half of ``--steps`` when that is shorter);
  (a*), (b*) the Krylov floor of rows (a) and (b): from the same start, the fewest Lanczos
      steps whose top Ritz value is within 1e-3 of the reference (``oracle.py``), timed as a
      solve of exactly that many steps. No stopping rule of this solver can stop sooner at
      that accuracy, so these rows bound what any rule could reach;
  (c) power iteration (the PyHessian baseline), same stopping rule, same products;
  (d) the reference code's method (Cohen et al.'s ``get_hessian_eigenvalues``), rebuilt:
      scipy ``eigsh`` over double-backward products recomputed in physical batches of
      1,000 examples, with a host copy per product. Two settings: "faithful" uses the
      reference's call (which="LM", tol=0, i.e. machine precision); "tol" gives ARPACK
      this engine's own stopping rule (which="LA", ||A x - l x|| <= tol |l|, ncv default).
      The speedup is quoted against the faster eigsh setting, with this engine run at the
      tolerance that makes its error no larger than eigsh's (equal or better accuracy);
  (e) one gradient evaluation, for scale (full batch, plain ``backward``);
  (f) the peer libraries, each where installed (optional: ``pip install --no-deps
      pyhessian==0.1 hessian-eigenthings==1.0.0a5 curvlinops-for-pytorch==3.0.1
      backpack-for-pytorch einops einconv linear_operator opt-einsum unfoldNd``; with their
      dependencies pip would replace the CPU torch by a CUDA build), on the same model, data
      and reference value:
        PyHessian 0.1's power iteration (its own retained-graph product), at the fastest of
        its ``tol`` 1e-3, 1e-4 and 1e-5 whose error is <= 1e-3;
        hessian-eigenthings' Lanczos (``which="LA"``, a fixed number of steps: the fewest that
        reach 1e-3, found by trying 2, 3, ...);
        curvlinops' ``HessianLinearOperator`` (``check_deterministic=False``: its start-up
        check would add products) under scipy ``eigsh`` (which="LA", tol 1e-3).

Seconds are wall-clock (``--clock cpu``: CPU seconds of this process, steadier on a shared
machine), the best of ``--repeats`` runs of each row. The last line reads

  sharpness-benchmark: speedup_vs_eigsh=<x> cold_products=<n> warm_products=<n>
  hvp_cost_in_gradients=<x> rel_err=<e> speedup_vs_best_peer=<x> speedup_vs_faithful=<x>
  floor_speedup_vs_faithful=<x> floor_speedup_vs_best_peer=<x> floor_warm_products=<n>

(on one line), where cold_products is the larger of the two points, warm_products the
warm row, speedup_vs_eigsh the smaller of the two points, hvp_cost_in_gradients the
seconds of row (a) per product (graph building, Lanczos arithmetic and all) over the
seconds of one gradient, rel_err the largest relative error of rows (a) and (b), and
speedup_vs_best_peer the seconds of the fastest peer row that reaches 1e-3 over those of
row (a), the smaller of the two points ("n/a" when no peer is installed); speedup_vs_faithful
the seconds of the faithful eigsh row over row (a)'s (the smaller of the two points); and the
floor_ fields the same ratios, and the warm products, for rows (a*) and (b*): the most that
any stopping rule of this Lanczos solve could reach.

Run from the repository root:  python benchmarks/sharpness.py  (add ``--root DIR`` or set
EOSTEACH_DATA to point at an extracted CIFAR-10; ``--device cuda`` to use a GPU).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

from eosteach import config, hessian
from eosteach.data import load_cifar10
from eosteach.losses import mse
from eosteach.models import make_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle import fewest_lanczos_steps  # noqa: E402  (a sibling script module)

TOL = 1e-3
WARM_GAP = [50]  # GD steps between the warm start's eigenvector and the point (set in main)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def timed(fn, device, repeats):
    """(result of the last run, best seconds over ``repeats`` runs, on ``clock``)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        sync(device)
        start = clock()
        out = fn()
        sync(device)
        best = min(best, clock() - start)
    return out, best


def gradient_seconds(model, x, y, device, repeats):
    params = list(model.parameters())

    def one_gradient():
        return torch.autograd.grad(mse(model(x), y), params)

    one_gradient()  # warm-up (allocator, kernels)
    return timed(one_gradient, device, repeats)[1]


def reference_hvp(model, x, y, vec, physical_batch_size=1000):
    """Cohen et al.'s ``compute_hvp``: per physical batch, loss -> grad (create_graph) ->
    grad of grad . v, summed; recomputed at every product."""
    params = list(model.parameters())
    n = len(x)
    out = torch.zeros_like(vec)
    for start in range(0, n, physical_batch_size):
        xb, yb = x[start : start + physical_batch_size], y[start : start + physical_batch_size]
        loss = mse(model(xb), yb) * (len(xb) / n)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = torch.nn.utils.parameters_to_vector(grads).mul(vec).sum()
        grads = torch.autograd.grad(dot, params, retain_graph=True)
        out += torch.nn.utils.parameters_to_vector([g.contiguous() for g in grads])
    return out


def eigsh_reference(model, x, y, *, which, tol):
    """scipy eigsh over ``reference_hvp`` with a host round trip per product (k = 1)."""
    device = next(model.parameters()).device
    n_params = sum(p.numel() for p in model.parameters())
    count = [0]

    def matvec(vec):
        count[0] += 1
        gpu_vec = torch.tensor(np.asarray(vec).ravel(), dtype=torch.float32, device=device)
        return reference_hvp(model, x, y, gpu_vec).detach().cpu().numpy()

    operator = LinearOperator((n_params, n_params), matvec=matvec, dtype=np.float32)
    evals, _ = eigsh(operator, k=1, which=which, tol=tol)
    return float(evals[-1]), count[0]


def gd_steps(model, x, y, steps, eta):
    for _ in range(steps):
        _, grad = hessian.flat_grad(model, mse, x, y)
        hessian.set_flat_params(model, hessian.flat_params(model) - eta * grad)


def reference_sharpness(model, x, y):
    model64 = copy.deepcopy(model).double()
    res = hessian.sharpness(model64, mse, x.double(), y.double(), tol=1e-10, max_products=400)
    if not res.converged:
        raise RuntimeError("the float64 reference Lanczos did not converge to 1e-10 in 400 products")
    return res.top, res.n_products


# --------------------------------------------------------------------------- peer libraries


def _counting(fn, count):
    def wrapped(*args, **kwargs):
        count[0] += 1
        return fn(*args, **kwargs)
    return wrapped


def pyhessian_top(model, x, y, tol):
    """PyHessian 0.1: ``hessian(model, criterion, data=(x, y)).eigenvalues(tol=tol)``, its
    power iteration over a retained gradient graph. (value, products)."""
    import importlib

    ph = importlib.import_module("pyhessian.hessian")  # the module (the package re-exports a class by its name)
    count = [0]
    original = ph.hessian_vector_product
    ph.hessian_vector_product = _counting(original, count)
    try:
        torch.manual_seed(0)  # PyHessian draws its start vector from the global generator
        engine = ph.hessian(model, mse, data=(x, y), cuda=x.device.type == "cuda")
        engine.device = x.device.type
        values, _ = engine.eigenvalues(maxIter=1000, tol=tol, top_n=1)
    finally:
        ph.hessian_vector_product = original
        model.zero_grad(set_to_none=True)  # PyHessian leaves create_graph gradients in .grad
    return float(values[0]), count[0]


def eigenthings_top(model, x, y, steps):
    """hessian-eigenthings 1.0.0a5: Lanczos (``which="LA"``) for a fixed number of steps over
    its HessianOperator (a double-backward product rebuilt at every step). (value, steps)."""
    from hessian_eigenthings import HessianOperator, lanczos

    op = HessianOperator(model, [(x, y)], lambda net, batch: mse(net(batch[0]), batch[1]))
    result = lanczos(op, k=1, max_iter=steps, which="LA", seed=0)
    return float(result.eigenvalues[0]), steps


def curvlinops_top(model, x, y):
    """curvlinops 3.0: ``HessianLinearOperator(...).to_scipy()`` under scipy ``eigsh``
    (which="LA", tol 1e-3). (value, products)."""
    from curvlinops import HessianLinearOperator

    class CourseMSE(torch.nn.Module):
        reduction = "mean"  # curvlinops reads it: a mean over the examples, as this course's MSE is

        def forward(self, output, target):
            return mse(output, target)

    params = [p for p in model.parameters() if p.requires_grad]
    op = HessianLinearOperator(model, CourseMSE(), params, [(x, y)], check_deterministic=False).to_scipy()
    count = [0]
    counted = LinearOperator(op.shape, matvec=_counting(op.matvec, count), dtype=op.dtype)
    value = eigsh(counted, k=1, which="LA", tol=TOL, return_eigenvectors=False)
    return float(value[-1]), count[0]


def peer_rows(model, x, y, device, repeats, err):
    """The peers' rows [(label, products, seconds, rel. error)] and the best seconds among
    those that reach 1e-3 (None when no peer is installed)."""
    rows, best = [], None

    def keep(label, out_seconds):
        nonlocal best
        (value, products), seconds = out_seconds
        rows.append((label, products, seconds, err(value)))
        if err(value) <= TOL and (best is None or seconds < best):
            best = seconds

    try:
        import pyhessian.hessian  # noqa: F401
    except ImportError:
        print("  (PyHessian not installed: row skipped)")
    else:
        timings = []
        for tol in (1e-3, 1e-4, 1e-5):
            out = timed(lambda: pyhessian_top(model, x, y, tol), device, repeats)
            timings.append((tol, out))
        reaching = [(o[1], tol, o) for tol, o in timings if err(o[0][0]) <= TOL]
        tol, out = (min(reaching)[1:] if reaching else timings[-1])
        keep(f"(f) PyHessian 0.1, tol {tol:g}{'' if reaching else ' (misses 1e-3)'}", out)
    try:
        import hessian_eigenthings  # noqa: F401
    except ImportError:
        print("  (hessian-eigenthings not installed: row skipped)")
    else:
        for steps in range(2, 41):
            (value, _), _ = timed(lambda: eigenthings_top(model, x, y, steps), device, 1)
            if err(value) <= TOL:
                break
        keep(f"(f) hessian-eigenthings, {steps} steps", timed(lambda: eigenthings_top(model, x, y, steps), device,
                                                             repeats))
    try:
        import curvlinops  # noqa: F401
    except ImportError:
        print("  (curvlinops not installed: row skipped)")
    else:
        keep("(f) curvlinops 3.0 + eigsh, tol 1e-3", timed(lambda: curvlinops_top(model, x, y), device, repeats))
    return rows, best


def measure_point(name, model, x, y, device, repeats, warm_v0, rows):
    s_ref, ref_products = reference_sharpness(model, x, y)
    grad_s = gradient_seconds(model, x, y, device, repeats)  # row (e), measured beside row (a)
    print(f"\n== {name}: reference S = {s_ref:.10g} (float64 Lanczos, tol 1e-10, {ref_products} products)")

    def err(value):
        return abs(value - s_ref) / abs(s_ref)

    point = {"s_ref": s_ref}
    table = []

    cold, t_cold = timed(lambda: hessian.sharpness(model, mse, x, y, tol=TOL), device, repeats)
    point["cold"] = (cold.n_products, t_cold, err(cold.top))
    table.append(("(a) engine, cold", cold.n_products, t_cold, err(cold.top)))
    cold64, t_cold64 = timed(lambda: hessian.sharpness(model, mse, x, y, tol=TOL, vector_dtype=torch.float64),
                             device, repeats)
    table.append(("(a64) engine, cold, float64 vectors", cold64.n_products, t_cold64, err(cold64.top)))

    if warm_v0 is not None:
        warm, t_warm = timed(lambda: hessian.sharpness(model, mse, x, y, tol=TOL, v0=warm_v0), device, repeats)
        point["warm"] = (warm.n_products, t_warm, err(warm.top))
        table.append((f"(b) engine, warm ({WARM_GAP[0]} steps old)", warm.n_products, t_warm, err(warm.top)))

    def floor_row(label, v0, key):
        """The Krylov floor from the start of the row in ``key`` (see the module docstring)."""
        op = hessian.HessianOperator(model, mse, x, y)
        work = hessian.krylov_dtype(op.dtype, TOL, op.n)  # the solve's own vectors: the same start
        steps = fewest_lanczos_steps(op, v0, s_ref, tol=TOL, max_products=80, vector_dtype=work)
        if steps is None:
            table.append((f"{label} (beyond 80 steps)", ">80", float("nan"), float("nan")))
            return
        fixed, t_fixed = timed(lambda: hessian.sharpness(model, mse, x, y, v0=v0, tol=1e-12, stop="residual",
                                                         max_products=steps, vector_dtype=work), device, repeats)
        point[key] = (fixed.n_products, t_fixed, err(fixed.top))
        table.append((label, fixed.n_products, t_fixed, err(fixed.top)))

    floor_row("(a*) floor of (a): fewest steps to 1e-3", None, "cold_floor")
    if warm_v0 is not None:
        floor_row("(b*) floor of (b): fewest steps to 1e-3", warm_v0, "warm_floor")

    def power():
        op = hessian.HessianOperator(model, mse, x, y)
        return hessian.power_iteration(op.matvec, op.n, tol=TOL, max_products=1000, device=device)

    pw, t_pw = timed(power, device, repeats)
    point["power"] = (pw.n_products, t_pw, err(pw.top))
    table.append((f"(c) power iteration{'' if pw.converged else ' (cap)'}", pw.n_products, t_pw, err(pw.top)))

    (s_f, n_f), t_f = timed(lambda: eigsh_reference(model, x, y, which="LM", tol=0), device, repeats)
    table.append(("(d) eigsh, faithful (LM, tol=0)", n_f, t_f, err(s_f)))
    (s_t, n_t), t_t = timed(lambda: eigsh_reference(model, x, y, which="LA", tol=TOL), device, repeats)
    table.append((f"(d) eigsh, tol={TOL:g} (LA)", n_t, t_t, err(s_t)))
    eigsh_best = min((t_f, err(s_f)), (t_t, err(s_t)))  # the faster setting and its error

    # Equal or better accuracy: tighten this engine's tolerance until its error is no
    # larger than that of the eigsh setting it is compared with.
    # (The residual rule, which reaches below the certified rule's float32 floor of ~1e-6.)
    tol, matched, t_matched = TOL, cold, t_cold
    while err(matched.top) > eigsh_best[1] and tol > 1e-7:
        tol /= 10
        matched, t_matched = timed(lambda: hessian.sharpness(model, mse, x, y, tol=tol, stop="residual"), device,
                                   repeats)
    if tol != TOL:
        table.append((f"(a') engine, cold, residual tol={tol:g}", matched.n_products, t_matched, err(matched.top)))
    point["speedup"] = eigsh_best[0] / t_matched
    point["matched_ok"] = err(matched.top) <= eigsh_best[1]
    point["vs_faithful"] = t_f / t_cold
    peers, best_peer = peer_rows(model, x, y, device, repeats, err)
    table += peers
    point["vs_peer"] = None if best_peer is None else best_peer / t_cold
    if "cold_floor" in point:
        t_floor = point["cold_floor"][1]
        point["floor_vs_faithful"] = t_f / t_floor
        point["floor_vs_peer"] = None if best_peer is None else best_peer / t_floor
    table.append(("(e) one gradient", "-", grad_s, float("nan")))

    print(f"{'row':40s} {'products':>8s} {'seconds':>9s} {'gradients':>9s} {'rel. error':>11s}")
    for label, products, seconds, rel_err in table:
        shown = "-" if rel_err != rel_err else f"{rel_err:.1e}"
        print(f"{label:40s} {products!s:>8s} {seconds:9.2f} {seconds / grad_s:9.1f} {shown:>11s}")
    point["cost"] = t_cold / cold.n_products / grad_s
    cost64 = t_cold64 / cold64.n_products / grad_s
    print(
        f"ratios: eigsh/engine = {point['speedup']:.1f}x at equal or better accuracy"
        f"{'' if point['matched_ok'] else ' (NOT matched)'}; faithful eigsh/engine cold = {t_f / t_cold:.1f}x;"
        f" power/engine cold = {t_pw / t_cold:.1f}x;"
        f" engine seconds per product = {point['cost']:.2f} gradients ({cost64:.2f} with float64 vectors)"
        + ("" if point["vs_peer"] is None else f"; fastest peer reaching 1e-3 / engine cold = {point['vs_peer']:.2f}x")
    )
    rows[name] = point
    return cold


def product_costs(model, x, y, device, repeats, grad_s):
    """Seconds of one product by each method of ``HessianOperator``, in gradients."""
    v = torch.randn(hessian.flat_params(model).numel(), generator=torch.Generator().manual_seed(0)).to(device)
    print("\nproduct cost (one H v, in gradient evaluations):")
    op = hessian.HessianOperator(model, mse, x, y, method="retained")
    (_, t_first) = timed(lambda: op.matvec(v), device, 1)
    (_, t_next) = timed(lambda: op.matvec(v), device, repeats)
    print(f"  retained graph, first product (builds the graph) {t_first / grad_s:5.2f}")
    print(f"  retained graph, each further product             {t_next / grad_s:5.2f}")
    for method in ("reverse", "forward"):
        op = hessian.HessianOperator(model, mse, x, y, method=method)
        op.matvec(v)
        _, t = timed(lambda: op.matvec(v), device, repeats)
        print(f"  recomputed, {method + '-over-reverse':20s}                {t / grad_s:5.2f}")
    _, t = timed(lambda: reference_hvp(model, x, y, v), device, repeats)
    print(f"  reference compute_hvp (batches of 1,000)          {t / grad_s:5.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=200, help="GD steps to the second point")
    parser.add_argument("--eta", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (best is kept)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall-clock seconds (default), or this process's CPU seconds (all threads), steadier on a shared machine",
    )
    parser.add_argument("--root", default=None, help="folder holding cifar-10-batches-bin/")
    args = parser.parse_args(argv)
    try:
        device = config.device(args.device)
        if args.steps < 20 or args.repeats < 1:
            raise ValueError("--steps must be >= 20 and --repeats >= 1")
    except ValueError as exc:
        print(f"sharpness-benchmark: {exc}", file=sys.stderr)
        return 2

    global clock
    clock = CLOCKS[args.clock]
    data = load_cifar10(n_train=args.n_train, loss="mse", root=args.root, device=device)
    x, y = data.x_train, data.y_train
    model = make_model("fc-tanh", seed=0, device=device)
    n_params = hessian.flat_params(model).numel()
    print(
        f"fc-tanh 3072-200-200-10 ({n_params:,} parameters), {len(x):,} CIFAR-10 images, MSE, float32,"
        f" device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} seconds"
    )
    grad_s = gradient_seconds(model, x, y, device, args.repeats)
    print(f"one gradient: {grad_s:.3f} s")
    product_costs(model, x, y, device, args.repeats, grad_s)

    rows = {}
    measure_point("initialisation", model, x, y, device, args.repeats, None, rows)
    WARM_GAP[0] = gap = min(50, args.steps // 2)
    gd_steps(model, x, y, args.steps - gap, args.eta)
    earlier = hessian.sharpness(model, mse, x, y, tol=TOL)  # what a run measured `gap` steps before
    gd_steps(model, x, y, gap, args.eta)
    measure_point(
        f"after {args.steps} GD steps at eta={args.eta:g}",
        model,
        x,
        y,
        device,
        args.repeats,
        earlier.eigenvectors,
        rows,
    )

    points = list(rows.values())
    cold_products = max(p["cold"][0] for p in points)
    warm_products = points[-1]["warm"][0]
    speedup = min(p["speedup"] for p in points)
    cost = max(p["cost"] for p in points)
    rel_err = max(max(p["cold"][2] for p in points), points[-1]["warm"][2])
    vs_peer = [p["vs_peer"] for p in points if p["vs_peer"] is not None]
    vs_peer = f"{min(vs_peer):.2f}" if vs_peer else "n/a"

    def smallest(key, digits):
        values = [p[key] for p in points if p.get(key) is not None]
        return f"{min(values):.{digits}f}" if len(values) == len(points) else "n/a"

    warm_floor = points[-1].get("warm_floor")
    print(
        f"sharpness-benchmark: speedup_vs_eigsh={speedup:.1f} cold_products={cold_products}"
        f" warm_products={warm_products} hvp_cost_in_gradients={cost:.2f} rel_err={rel_err:.1e}"
        f" speedup_vs_best_peer={vs_peer} speedup_vs_faithful={smallest('vs_faithful', 1)}"
        f" floor_speedup_vs_faithful={smallest('floor_vs_faithful', 1)}"
        f" floor_speedup_vs_best_peer={smallest('floor_vs_peer', 2)}"
        f" floor_warm_products={warm_floor[0] if warm_floor else 'n/a'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
