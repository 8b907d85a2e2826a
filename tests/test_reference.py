"""The shipped reference runs (Cohen et al. 2021, Figure 1 at the paper's scale): what they
are, that they show what the lessons say of them, and that anyone can reproduce them."""

from pathlib import Path

import numpy as np
import pytest

from eosteach import claims, reference, runs

PAPER = dict(data="cifar10", n_train=5000, arch="fc-tanh", width=200, depth=2, loss="mse", opt="gd",
             acc_goal=0.99, eig_every=50, momentum=0.0, classes=None, dtype="float32", init_scale=1.0)
SHIPPED = Path(reference.__file__).parent / reference.FOLDER


def test_four_runs_at_the_papers_settings():
    assert reference.names() == ["fig1-tanh-200", "fig1-tanh-150", "fig1-tanh-120", "fig1-tanh-100",
                                 "lrdrop-tanh-100"]
    for name, eta in reference.FIGURE1.items():
        run = reference.load(name)
        assert {k: getattr(run.config, k) for k in PAPER} == PAPER
        assert run.config.lr == pytest.approx(eta, rel=1e-12)
        assert run.status == "goal_reached" and run.path is None
        m = run.metrics
        assert m["accuracy"][-1] >= 0.99 and (m["accuracy"][:-1] < 0.99).all()  # stopped at 99%, not later
        assert (np.diff(m["step"]) == 1).all() and m["step"][0] == 0
        assert (m["eig_step"] % 50 == 0).all() and m["eig_step"][0] == 0
        assert np.allclose(m["threshold"], 2 / eta)


def test_lr_drop_run_at_the_papers_scale():
    run = reference.lr_drop()
    c = run.config
    same = {k: v for k, v in PAPER.items() if k != "acc_goal"}
    assert {k: getattr(c, k) for k in same} == same and c.acc_goal is None
    assert (c.lr, c.lr_drop_step, c.lr_drop_factor, c.steps) == (0.02, 2000, 0.8, 6000)
    assert run.status == "finished" and run.path is None
    m = run.metrics
    np.testing.assert_array_equal(m["step"], np.arange(6000))  # steps 0..5999: 6,000 GD steps
    np.testing.assert_array_equal(m["eig_step"], np.arange(0, 6000, 50))
    # 2/eta of each step's own eta: 100 before the drop, 2 / (0.02 x 0.8) = 125 from step 2,000 on
    np.testing.assert_allclose(m["threshold"], np.where(m["eig_step"] < 2000, 100.0, 125.0), rtol=1e-6)


def test_lr_drop_run_hovers_then_rises_to_the_new_threshold():
    """Lesson 4's sentences about the shipped drop, with the vocabulary's bands."""
    m = reference.lr_drop().metrics
    s, e = m["sharpness"], m["eig_step"]
    assert claims.hovers_at(s[e < 2000], 100)
    assert claims.rises_to(s[e >= 2000], 125)


def test_lr_drop_run_begins_as_figure1s_eta_2_100_run():
    """Before the drop the two runs have the same settings, so their first 200 steps agree
    (the shipped records were made at different times, by `eosteach run` and `eosteach sweep`)."""
    a, b = reference.lr_drop().metrics, reference.load("fig1-tanh-100").metrics
    np.testing.assert_allclose(a["loss"][:201], b["loss"][:201], rtol=1e-4, atol=0)
    np.testing.assert_allclose(a["sharpness"][:5], b["sharpness"][:5], rtol=1e-4, atol=0)


def test_shipped_records_are_small():
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert size < 1_000_000, f"{size} bytes"
    assert sorted(p.name for p in SHIPPED.iterdir() if p.is_dir()) == sorted(reference.names())


@pytest.mark.parametrize("name", list(reference.FIGURE1))
def test_each_run_rises_to_its_own_threshold_and_hovers_there(name):
    """The lessons' sentence about Figure 1, with the vocabulary's bands (eosteach.claims)."""
    run = reference.load(name)
    s, threshold = run.metrics["sharpness"], 2 / run.config.lr
    assert claims.rises_to(s, threshold)
    assert claims.hovers_at(s, threshold)


def test_figure1_maps_eta_to_run():
    fig = reference.figure1()
    assert sorted(fig) == sorted(reference.FIGURE1.values())
    assert all(run.config.lr == eta for eta, run in fig.items())


def test_unknown_name_is_refused_with_the_allowed_names():
    with pytest.raises(ValueError, match="name must be one of fig1-tanh-200, .*lrdrop-tanh-100"):
        reference.load("fig1")


def test_pack_keeps_everything_visible(tmp_path):
    config = runs.RunConfig(data="synthetic", n_train=40, width=8, steps=30, eig_every=10, lr=0.05)
    runs.train(config, out=tmp_path / "run", progress=False)
    packed = reference.pack(tmp_path / "run", tmp_path / "packed")
    original, small = runs.load_run(tmp_path / "run"), runs.load_run(packed)
    assert small.info == original.info and small.config == config
    with np.load(packed / runs.METRICS) as f:
        assert {f[k].dtype for k in f.files} <= {np.dtype(np.float32), np.dtype(np.int32)}
    for k, v in original.metrics.items():
        if v.dtype.kind == "f":
            np.testing.assert_allclose(small.metrics[k], v, rtol=1e-7, atol=0)
        else:
            np.testing.assert_array_equal(small.metrics[k], v)


def test_pack_refuses_an_unfinished_run(tmp_path):
    config = runs.RunConfig(data="synthetic", n_train=40, width=8, steps=30, eig_every=10)
    runs.train(config, out=tmp_path / "run", progress=False)
    info = (tmp_path / "run" / runs.RUN_JSON).read_text().replace('"finished"', '"running"')
    (tmp_path / "run" / runs.RUN_JSON).write_text(info)
    with pytest.raises(ValueError, match="run_dir must hold a finished run"):
        reference.pack(tmp_path / "run", tmp_path / "packed")


@pytest.mark.slow
@pytest.mark.parametrize("name", reference.names())
def test_first_200_steps_reproduce_from_the_recorded_settings(name, cifar_root, monkeypatch):
    """Re-train steps 0..200 from run.json's settings: the train loss at every step and the
    sharpness at steps 0, 50, 100, 150, 200 match the shipped records to 1e-4 (relative;
    BLAS, thread counts and the float32 copy differ between machines, not the run)."""
    monkeypatch.setenv("EOSTEACH_DATA", str(cifar_root))
    shipped = reference.load(name)
    settings = {**shipped.config.to_dict(), "steps": 201, "acc_goal": None, "device": "cpu"}
    again = runs.train(runs.RunConfig.from_dict(settings), progress=False)
    m, ref = again.metrics, shipped.metrics
    np.testing.assert_array_equal(m["step"], np.arange(201))
    np.testing.assert_allclose(m["loss"], ref["loss"][:201], rtol=1e-4, atol=0)
    np.testing.assert_array_equal(m["eig_step"], [0, 50, 100, 150, 200])
    np.testing.assert_allclose(m["sharpness"], ref["sharpness"][:5], rtol=1e-4, atol=0)
