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
               rf" hvp_cost_in_gradients=({NUMBER}) rel_err=({NUMBER}) speedup_vs_best_peer=({NUMBER}|n/a)")
    match = re.fullmatch(pattern, line)
    assert match, line
    assert float(match.group(5)) < 1e-3  # the engine's sharpness agrees with the float64 reference


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
                        rf" resid_after={value} oracle_before={value} oracle_after={value}", line), line
