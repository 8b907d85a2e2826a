"""The ``eosteach`` command: one-line errors with exit code 2, run / plot / resume end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from eosteach import cli, plotting, runs

SMALL = ["--data", "synthetic", "--n-train", "40", "--width", "8", "--device", "cpu", "--lr", "0.1",
         "--eig-every", "5", "--no-progress"]


@pytest.mark.parametrize("argv,needle", [
    (["run", "--arch", "resnet"], "arch must be one of"),
    (["run", "--data", "mnist"], "data must be one of"),
    (["run", "--opt", "lbfgs"], "opt must be one of"),
    (["run", "--lr", "0"], "lr must be a finite number > 0"),
    (["run", "--lr", "-0.5"], "lr must be a finite number > 0"),
    (["run", "--opt", "heavy_ball", "-b", "1"], "momentum must lie in [0, 1)"),
    (["run", "--opt", "nesterov", "-b", "-0.1"], "momentum must lie in [0, 1)"),
    (["run", "--steps", "many"], "invalid int value"),
    (["run", "--no-such-flag"], "unrecognized arguments"),
    (["fly"], "invalid choice"),
    (["plot", "/nonexistent/run"], "no run found"),
    (["resume", "/nonexistent/run"], "no run found"),
])
def test_bad_settings_exit_2_with_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(cli.main(argv))
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert needle in lines[0] and "error" in lines[0]
    assert "Traceback" not in captured.err


def test_the_installed_entry_point_style_invocation_exits_2():
    """``python -m eosteach`` (same main as the console script) in a fresh process."""
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    result = subprocess.run([sys.executable, "-m", "eosteach", "run", "--lr", "0"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "eosteach run: error: lr must be a finite number > 0, got 0.0"



def test_help_documents_every_command_and_flag(capsys):
    for argv in (["--help"], ["run", "--help"], ["plot", "--help"], ["resume", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("run", "plot", "resume", "RUN_DIR", "--output", "2/eta"):
        assert word in text
    for flag in ("--data", "--n-train", "--classes", "--arch", "--width", "--depth", "--loss", "--opt", "--lr",
                 "--momentum", "--beta2", "--batch-size", "--eig-every", "--eig-k", "--steps", "--loss-goal",
                 "--acc-goal", "--lr-drop-step", "--test-every", "--checkpoint-every", "--seed", "--device",
                 "--dtype", "--out"):
        assert flag in text, flag
    for allowed in ("fc-tanh", "cnn-relu", "cifar10", "synthetic", "heavy_ball", "adam", "flow", "mse"):
        assert allowed in text, allowed


def test_run_plot_resume_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["run", *SMALL, "--steps", "20", "--checkpoint-every", "10", "--out", str(out)]) == 0
    assert "finished: 20 steps" in capsys.readouterr().out
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and info["config"]["lr"] == 0.1 and info["synthetic"] is True
    run = runs.load_run(out)
    assert len(run.metrics["loss"]) == 20 and np.array_equal(run.metrics["eig_step"], [0, 5, 10, 15])

    # A second run with another eta, then one figure of both.
    other = tmp_path / "other"
    assert cli.main(["run", *SMALL, "--steps", "20", "--lr", "0.05", "--out", str(other)]) == 0
    png = tmp_path / "fig.png"
    assert cli.main(["plot", str(out), str(other), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Interrupt a run, then resume it from the command line: same records as uninterrupted.
    stopped = tmp_path / "stopped"

    def interrupt(info):
        if info["step"] == 13:
            raise KeyboardInterrupt

    config = run.config
    with pytest.raises(KeyboardInterrupt):
        runs.train(config, out=stopped, progress=False, callback=interrupt)
    capsys.readouterr()
    assert cli.main(["resume", str(stopped), "--no-progress"]) == 0
    assert "finished: 20 steps" in capsys.readouterr().out
    resumed = runs.load_run(stopped)
    for key in run.metrics:
        assert np.array_equal(resumed.metrics[key], run.metrics[key], equal_nan=True), key
    assert cli.main(["resume", str(out)]) == 0
    assert "nothing to resume" in capsys.readouterr().out

    # Re-running into the same folder with other settings is refused in one line.
    assert cli.main(["run", *SMALL, "--steps", "30", "--out", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err


def test_run_without_out_uses_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EOSTEACH_RUNS", str(tmp_path))
    argv = ["run", *SMALL, "--steps", "10"]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert str(tmp_path) in first
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == first and list(tmp_path.iterdir()) == folders


def test_plot_a_sweep_folder_draws_every_run_in_figure_1_form(tmp_path, capsys):
    """A folder of run folders plots all of them: loss on a log axis, each run's sharpness in
    its own colour with its threshold dashed in the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    sweep = tmp_path / "sweep"
    for lr in ("0.05", "0.1"):
        assert cli.main(["run", *SMALL, "--steps", "10", "--lr", lr, "--out", str(sweep / f"lr{lr}")]) == 0
    png = tmp_path / "sweep.png"
    assert cli.main(["plot", str(sweep), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    folders = cli._run_folders([sweep])
    assert [p.name for p in folders] == ["lr0.05", "lr0.1"]
    ax_loss, ax_sharp = Figure().subplots(1, 2)
    plotting.loss_and_sharpness(ax_loss, ax_sharp, [runs.load_run(p) for p in folders])
    assert ax_loss.get_yscale() == "log" and len(ax_loss.get_lines()) == 2
    solid = [ln for ln in ax_sharp.get_lines() if ln.get_linestyle() == "-"]
    dashed = [ln for ln in ax_sharp.get_lines() if ln.get_linestyle() == "--"]
    assert len(solid) == len(dashed) == 2
    assert [s.get_color() for s in solid] == [d.get_color() for d in dashed]
    assert solid[0].get_color() != solid[1].get_color()
    assert sorted(float(d.get_ydata()[0]) for d in dashed) == [20.0, 40.0]  # 2/eta for eta = 0.1, 0.05

    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert cli.main(["plot", str(empty), "-o", str(png)]) == 2
    assert "no run found" in capsys.readouterr().err
