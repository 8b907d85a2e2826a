"""The benchmark scripts run end to end at a tiny scale and end with their documented last
line. (Their figures are measured, printed and reported in the README; no test asserts a
time.)"""

import importlib.util
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:e[-+][0-9]+)?"


def load(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def last_line(capsys):
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_train_benchmark_last_line(capsys):
    load("train").main(["--steps", "6", "--track-steps", "8", "--repeats", "1", "--n-train", "40"])
    line = last_line(capsys)
    assert re.fullmatch(rf"train-benchmark: runner_vs_bare=({NUMBER}) tracking_overhead=({NUMBER})"
                        rf" tracking_overhead_eos=({NUMBER}|n/a)", line), line


def test_train_benchmark_from_a_checkpoint(capsys, tmp_path):
    """--from-step: the checkpoint is made once and reused, and both copies resume from it."""
    folder = tmp_path / "checkpoint"
    argv = ["--n-train", "40", "--from-step", "50", "--track-steps", "50", "--repeats", "1",
            "--checkpoint-dir", str(folder)]
    load("train").main(argv)
    out = capsys.readouterr().out
    assert re.fullmatch(rf"train-benchmark-from-checkpoint: step=50 sharpness_at_step=({NUMBER})"
                        rf" tracking_overhead=({NUMBER})", out.strip().splitlines()[-1]), out
    assert re.search(r"Lanczos products per point: \[[0-9]+\] ", out), out  # one point: step 100
    made = (folder / "checkpoint.pt").stat().st_mtime_ns
    load("train").main(argv)
    assert (folder / "checkpoint.pt").stat().st_mtime_ns == made  # reused, not trained again


def test_sharpness_benchmark_last_line(capsys, cifar_root):
    """The sharpness benchmark reads CIFAR-10 only (no synthetic fallback)."""
    assert load("sharpness").main(["--n-train", "60", "--steps", "20", "--repeats", "1",
                                   "--root", str(cifar_root)]) == 0
    line = last_line(capsys)
    pattern = (rf"sharpness-benchmark: speedup_vs_eigsh=({NUMBER}) cold_products=([0-9]+) warm_products=([0-9]+)"
               rf" hvp_cost_in_gradients=({NUMBER}) rel_err=({NUMBER}) speedup_vs_best_peer=({NUMBER}|n/a)"
               rf" speedup_vs_faithful=({NUMBER}) floor_speedup_vs_faithful=({NUMBER}|n/a)"
               rf" floor_speedup_vs_best_peer=({NUMBER}|n/a) floor_warm_products=([0-9]+|n/a)")
    match = re.fullmatch(pattern, line)
    assert match, line
    assert float(match.group(5)) < 1e-3  # the engine's sharpness agrees with the float64 reference
    if match.group(10) != "n/a":  # no rule stops sooner than the floor's fixed-step solve
        assert int(match.group(10)) <= int(match.group(3))


def test_sweep_benchmark_last_line(capsys):
    """Both arms (sequential, and eosteach.sweeps on a LocalCluster) at a tiny scale."""
    assert load("sweep").main(["--data", "synthetic", "--n-train", "40", "--steps", "10", "--workers", "2"]) == 0
    line = last_line(capsys)
    assert re.fullmatch(rf"sweep-benchmark: sequential_s=({NUMBER}) sweep_s=({NUMBER}) speedup=({NUMBER})", line), line


def test_warm_starts_benchmark_last_line(capsys, cifar_root, monkeypatch):
    monkeypatch.setenv("EOSTEACH_DATA", str(cifar_root))
    assert load("warm_starts").main(["--n-train", "60", "--steps", "20", "--every", "10"]) == 0
    line = last_line(capsys)
    value = rf"({NUMBER}|n/a)"
    assert re.fullmatch(rf"warm-starts-benchmark: cert_before={value} cert_after={value} resid_before={value}"
                        rf" resid_after={value} oracle_before={value} oracle_after={value}"
                        rf" product_cost_in_gradients=({NUMBER}) overhead_floor_after={value}", line), line


def test_krylov_floor_matches_a_dense_krylov_space():
    """``oracle.fewest_lanczos_steps`` against Rayleigh-Ritz on a Krylov basis built from a
    dense float64 Hessian: the returned m reaches the tolerance there, and m - 1 does not."""
    import torch

    from eosteach import hessian, losses, models

    oracle = load("oracle")
    model = models.make_model("fc-tanh", width=6, depth=2, input_dim=5, n_classes=3, seed=0).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.randint(0, 3, (20,), generator=gen), 3).double()
    h = hessian.dense_hessian(model, losses.mse, x, y)
    top = float(torch.linalg.eigvalsh(h)[-1])
    v0 = torch.randn(h.shape[0], generator=gen, dtype=torch.float64)
    op = hessian.HessianOperator(model, losses.mse, x, y)
    tol = 1e-6
    m = oracle.fewest_lanczos_steps(op, v0, top, tol=tol, max_products=h.shape[0])
    assert m is not None and m > 2

    def krylov_top(steps):  # an orthonormal basis of span{v0, H v0, ..., H^(steps-1) v0}
        columns = [v0 / v0.norm()]
        for _ in range(steps - 1):
            w = h @ columns[-1]
            for _ in range(2):
                for c in columns:
                    w = w - (c @ w) * c
            columns.append(w / w.norm())
        q = torch.stack(columns, 1)
        return float(torch.linalg.eigvalsh(q.T @ h @ q)[-1])

    assert abs(krylov_top(m) - top) <= tol * abs(top)
    assert abs(krylov_top(m - 1) - top) > tol * abs(top)
