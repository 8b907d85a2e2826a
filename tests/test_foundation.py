"""The shared foundation: input validation, the scale switch, device choice, cache
folders and atomic writes."""

import json
import math
import os

import numpy as np
import pytest
import torch

from eosteach import config, files, thresholds, validate


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, "x", None, True])
def test_positive_rejects_with_the_parameter_name(bad):
    with pytest.raises(ValueError, match=r"eta must be a finite number > 0"):
        validate.positive("eta", bad)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, math.nan, "0.5"])
def test_momentum_must_lie_in_unit_interval(bad):
    with pytest.raises(ValueError, match=r"b must lie in \[0, 1\)"):
        validate.momentum("b", bad)


def test_choice_lists_the_allowed_values():
    with pytest.raises(ValueError, match=r"arch must be one of 'fc-tanh', 'cnn-relu'; got 'mlp'"):
        validate.choice("arch", "mlp", ["fc-tanh", "cnn-relu"])
    assert validate.choice("arch", "fc-tanh", ["fc-tanh"]) == "fc-tanh"


def test_positive_int():
    assert validate.positive_int("k", 3) == 3
    for bad in (0, -2, 2.5, "3", True):
        with pytest.raises(ValueError, match="k must be an integer >= 1"):
            validate.positive_int("k", bad)


def test_scale_follows_the_environment(monkeypatch):
    monkeypatch.setenv("EOSTEACH_FAST", "1")
    assert config.fast() and config.scale(1000, 100) == 100
    monkeypatch.setenv("EOSTEACH_FAST", "0")
    assert not config.fast() and config.scale(1000, 100) == 1000
    monkeypatch.delenv("EOSTEACH_FAST")
    assert config.scale(1000, 100) == 1000


def test_folders_argument_then_environment_then_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EOSTEACH_DATA", str(tmp_path / "env"))
    assert config.data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert config.data_dir() == tmp_path / "env"
    monkeypatch.delenv("EOSTEACH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if os.name == "posix" and not config.sys.platform == "darwin":
        assert config.data_dir() == tmp_path / "cache" / "eosteach" / "data"
        monkeypatch.delenv("EOSTEACH_RUNS", raising=False)
        assert config.runs_dir() == tmp_path / "cache" / "eosteach" / "runs"


def test_device_choice():
    assert config.device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert config.device().type == expected
    assert config.device("auto").type == expected
    with pytest.raises(ValueError, match="device must be one of"):
        config.device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            config.device("cuda")


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    files.atomic_write_json(tmp_path / "run.json", {"a": 1})
    files.atomic_save_npz(tmp_path / "metrics.npz", step=np.arange(3))
    files.atomic_torch_save(tmp_path / "ckpt.pt", {"t": torch.ones(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "metrics.npz", "run.json"]
    assert json.loads((tmp_path / "run.json").read_text()) == {"a": 1}
    assert np.load(tmp_path / "metrics.npz")["step"].tolist() == [0, 1, 2]
    assert torch.load(tmp_path / "ckpt.pt")["t"].sum().item() == 2


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "run.json"
    files.atomic_write_json(target, {"old": True})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        files.atomic_write_json(target, {"new": Unserialisable()})
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_thresholds_reduce_to_gd_without_momentum():
    eta = 0.037
    assert thresholds.gd(eta) == pytest.approx(2 / eta)
    assert thresholds.heavy_ball(eta, 0.0) == pytest.approx(2 / eta)
    assert thresholds.nesterov(eta, 0.0) == pytest.approx(2 / eta)
    assert thresholds.adam(0.01, 0.9) == pytest.approx(38 / 0.01)
    with pytest.raises(ValueError, match="method must be one of"):
        thresholds.threshold("sgd", 0.1)
