"""How far is a tracking point from its floor? Products per sharpness along a GD run.

Along fc-tanh 200-200 GD (PyTorch's default init, seed 0, float32) on the first
``--n-train`` CIFAR-10 images (MSE, eta = ``--lr``), the sharpness is measured every
``--every`` steps, warm-started from the previous point's Ritz vectors as a run does. At each
point it prints the products used by

  * cert:   ``hessian.sharpness`` with its default certified rule (Kato-Temple bound <= 1e-3
            relative, confirmed one product later), v0 = the previous point's ``ritz_vectors``;
  * resid:  the runner's rule (``runs.EIG_TOL``: residual <= 3e-3 |lambda|), v0 = the previous
            point's top eigenvector;
  * oracle: the fewest Lanczos steps, from the same start as resid, after which the top Ritz
            value is within 1e-3 of the reference, found by Rayleigh-Ritz on the recorded
            Krylov basis: what any stopping rule of this Krylov method would need at the least;

and the relative error of cert and resid against a reference (Lanczos, residual 1e-6,
from its own random start). The phase (sharpening, or the edge of stability once S has
reached 2/eta) is marked. The last line reads

  warm-starts-benchmark: cert_before=<x> cert_after=<x> resid_before=<x> resid_after=<x>
  oracle_before=<x> oracle_after=<x> product_cost_in_gradients=<x> overhead_floor_after=<x>

(one line): mean products per point before and after S first reaches 2/eta ("n/a" for a
phase with no point; an oracle beyond ``--max-products`` counts as max_products + 1, so its
mean is a lower bound); the seconds of one retained-graph product over those of one
gradient at the last point (best of 3); and the floor of the tracking overhead at the edge
of stability, 1 + oracle_after x product_cost / every: what tracking from these starts
would cost against not tracking if a stopping rule knew the answer and the solver's vector
work were free.

    python benchmarks/warm_starts.py [--n-train 1000] [--lr 0.02] [--steps 1000] [--every 50]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from eosteach import data, hessian, losses, models, runs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle import fewest_lanczos_steps  # noqa: E402  (a sibling script module)

TOL = 1e-3


def best_seconds(fn, repeats=3):
    fn()  # warm-up (and, for a product, the graph)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def mean(values):
    values = [v for v in values if v is not None]
    return f"{sum(values) / len(values):.1f}" if values else "n/a"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--max-products", type=int, default=40)
    args = parser.parse_args(argv)

    ds = data.load_cifar10(args.n_train, download=False)
    model = models.make_model("fc-tanh", width=200, depth=2, seed=0)
    params = list(model.parameters())
    cert_v0 = resid_v0 = None
    rows = []
    print(f"fc-tanh 200-200, {ds.name}, GD eta={args.lr}, sharpness every {args.every} steps, tol {TOL}")
    print(f"{'step':>6}{'S':>9}{'phase':>7}{'cert':>6}{'err':>9}{'resid':>7}{'err':>9}{'oracle':>8}")
    reached = False
    for step in range(args.steps + 1):
        if step % args.every == 0:
            op = hessian.HessianOperator(model, losses.mse, ds.x_train, ds.y_train)
            ref = hessian.lanczos(op.matvec, op.n, tol=1e-6, stop="residual", max_products=300, seed=1).top
            cert = hessian.sharpness(model, losses.mse, ds.x_train, ds.y_train, v0=cert_v0, tol=TOL,
                                     max_products=args.max_products)
            resid = hessian.sharpness(model, losses.mse, ds.x_train, ds.y_train, v0=resid_v0, tol=runs.EIG_TOL,
                                      stop="residual", max_products=args.max_products)
            oracle = fewest_lanczos_steps(op, resid_v0, ref, tol=TOL, max_products=args.max_products)
            oracle = args.max_products + 1 if oracle is None else oracle
            reached = reached or ref >= 2 / args.lr
            rows.append((reached, cert.n_products, resid.n_products, oracle))
            print(f"{step:>6}{ref:>9.3f}{'EoS' if reached else 'sharp':>7}{cert.n_products:>6}"
                  f"{abs(cert.top - ref) / ref:>9.1e}{resid.n_products:>7}{abs(resid.top - ref) / ref:>9.1e}"
                  f"{oracle if oracle <= args.max_products else '>' + str(args.max_products):>8}")
            cert_v0, resid_v0 = cert.ritz_vectors, resid.eigenvectors
        loss = losses.mse(model(ds.x_train), ds.y_train)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(g, alpha=args.lr)
    fields = []
    for name, column in (("cert", 1), ("resid", 2), ("oracle", 3)):
        for phase, after in (("before", False), ("after", True)):
            fields.append(f"{name}_{phase}={mean([r[column] for r in rows if r[0] == after])}")
    op = hessian.HessianOperator(model, losses.mse, ds.x_train, ds.y_train)
    v = torch.randn(op.n, generator=torch.Generator().manual_seed(0))
    product_s = best_seconds(lambda: op.matvec(v))
    gradient_s = best_seconds(lambda: torch.autograd.grad(losses.mse(model(ds.x_train), ds.y_train), params))
    cost = product_s / gradient_s
    after = [r[3] for r in rows if r[0]]
    floor = f"{1 + sum(after) / len(after) * cost / args.every:.3f}" if after else "n/a"
    fields += [f"product_cost_in_gradients={cost:.2f}", f"overhead_floor_after={floor}"]
    print("warm-starts-benchmark: " + " ".join(fields))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
