"""Benchmark of ``eosteach.sweeps``: what does a sweep on Dask buy on this machine?

Four lesson-scale runs (fc-tanh 3072-100-100-10 on the first ``--n-train`` CIFAR-10 images,
MSE, GD at 2/eta = 100, 120, 150, 200, sharpness every 20 steps, ``--steps`` steps each) are
trained twice, each time into fresh run folders:

  (a) one after another in this process, torch with ``--threads`` threads (default 2, one
      per core of the reference machine);
  (b) through ``sweeps.sweep`` on a LocalCluster of ``--workers`` single-threaded worker
      processes (default: one per core), the sweep's own default. Its time includes
      starting and closing the cluster, which a user pays too.

Both produce the same runs (the sweep's test checks them against sequential runs); this
measures only the wall time. Measured on the project's 2-core machine (README,
"Performance"): speedup 0.70 at 300 steps and 0.94 at 1,500 steps. At this size torch's two
threads already keep both cores busy, and the sweep also pays for starting the cluster and
for loading the data in each worker; on one small machine a sweep buys resumability and the
same code as on a cluster, not speed.

    python benchmarks/sweep.py [--n-train 500] [--steps 300] [--threads 2] [--workers 2] [--data cifar10]

Prints a table and, as its last line, exactly:
    sweep-benchmark: sequential_s=<x> sweep_s=<x> speedup=<x>
where speedup = sequential_s / sweep_s (measured, not asserted).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from eosteach import runs, sweeps

THRESHOLDS = (100, 120, 150, 200)  # 2/eta of the four runs


def configs(n_train: int, steps: int, data: str) -> list:
    base = runs.RunConfig(data=data, n_train=n_train, arch="fc-tanh", width=100, depth=2, loss="mse", opt="gd",
                          steps=steps, eig_every=20, seed=0, device="cpu")
    return sweeps.grid(base, lr=[2 / t for t in THRESHOLDS])


def sequential(cfgs, out: Path, threads: int) -> float:
    """Seconds to train ``cfgs`` one after another in this process with ``threads`` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        for i, cfg in enumerate(cfgs):
            runs.train(cfg, out=out / f"run{i}", progress=False)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(before)


def through_sweep(cfgs, out: Path, workers: int) -> float:
    """Seconds for ``sweeps.sweep`` on a fresh LocalCluster of ``workers`` processes."""
    start = time.perf_counter()
    client = sweeps.local_client(workers)
    try:
        results = sweeps.sweep(cfgs, out, client=client, progress=False)
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    elapsed = time.perf_counter() - start
    bad = [r for r in results if r.status not in runs.DONE]
    if bad:
        raise RuntimeError(f"sweep runs did not finish: {[(r.path.name, r.status, r.error) for r in bad]}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=500)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", default="cifar10", choices=("cifar10", "synthetic"))
    args = parser.parse_args(argv)
    cfgs = configs(args.n_train, args.steps, args.data)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seq = sequential(cfgs, tmp / "sequential", args.threads)
        par = through_sweep(cfgs, tmp / "sweep", args.workers)
    print(f"four runs of {args.steps} steps, fc-tanh 100-100 on {args.data}-{args.n_train}, 2/eta = {THRESHOLDS}")
    print(f"  (a) one after another, {args.threads} torch threads: {seq:8.2f} s")
    print(f"  (b) eosteach.sweeps on {args.workers} single-threaded workers: {par:8.2f} s (cluster start included)")
    print(f"sweep-benchmark: sequential_s={seq:.3f} sweep_s={par:.3f} speedup={seq / par:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
