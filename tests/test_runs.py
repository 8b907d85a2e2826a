"""Training runs: records, stop rules, resume bit for bit, cache reuse, atomic run folders."""

import json
import warnings

import numpy as np
import pytest
import torch

from eosteach import files, hessian, losses, models, runs

TINY = dict(data="synthetic", n_train=48, width=8, depth=2, device="cpu", lr=0.1, steps=30, eig_every=5)


def tiny(**changes):
    return runs.RunConfig(**{**TINY, **changes})


def assert_same_metrics(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        assert np.array_equal(a[key], b[key], equal_nan=True), key


def test_records_shapes_and_meaning():
    run = runs.train(tiny(test_every=10, eig_k=2), progress=False)
    m = run.metrics
    assert run.status == "finished"
    assert np.array_equal(m["step"], np.arange(30))
    assert np.array_equal(m["eig_step"], np.arange(0, 30, 5))
    assert np.array_equal(m["test_step"], [0, 10, 20])
    assert m["eigenvalues"].shape == (6, 2) and np.all(m["eigenvalues"][:, 0] >= m["eigenvalues"][:, 1])
    assert np.array_equal(m["sharpness"], m["eigenvalues"][:, 0])
    assert np.allclose(m["threshold"], 2 / 0.1) and np.allclose(m["time"], 0.1 * np.arange(30))
    assert m["distance"][0] == 0 and np.all(np.diff(m["distance"]) > 0)
    assert np.all((0 <= m["accuracy"]) & (m["accuracy"] <= 1)) and m["loss"][-1] < m["loss"][0]
    assert run.final_params().shape == (hessian.flat_params(run.model()).numel(),)
    assert run.info["synthetic"] is True and run.info["device"] == "cpu"


def test_tracked_values_against_independent_computations():
    """Sharpness at step 10 against scipy's eigsh (the reference method of Cohen et al.) at
    theta_10, the final parameters of the same run stopped after 10 steps; loss and distance
    recomputed from those parameters."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    long = runs.train(tiny(steps=20, eig_every=10, dtype="float64"), progress=False)
    short = runs.train(tiny(steps=10, eig_every=10, dtype="float64"), progress=False)
    assert np.array_equal(long.metrics["loss"][:10], short.metrics["loss"])
    net = short.model()
    data = runs.build(short.config, "cpu").dataset
    x, y = data.x_train, data.y_train
    params = list(net.parameters())

    def hv(v):
        v = torch.from_numpy(np.asarray(v, dtype=np.float64).reshape(-1))
        g = torch.autograd.grad(losses.mse(net(x), y), params, create_graph=True)
        flat = torch.cat([t.reshape(-1) for t in g])
        h = torch.autograd.grad(flat @ v, params)
        return torch.cat([t.reshape(-1) for t in h]).numpy()

    n = short.final_params().numel()
    top = eigsh(LinearOperator((n, n), matvec=hv, dtype=np.float64), k=1, which="LA", tol=1e-10)[0][0]
    assert long.metrics["sharpness"][1] == pytest.approx(top, rel=2e-3)
    with torch.no_grad():
        assert long.metrics["loss"][10] == pytest.approx(float(losses.mse(net(x), y)), rel=1e-12)
    init = models.make_model("fc-tanh", width=8, depth=2, seed=0, dtype=torch.float64)
    theta0 = hessian.flat_params(init)
    assert long.metrics["distance"][1] == pytest.approx(float((short.final_params() - theta0).norm()), rel=1e-12)


@pytest.mark.parametrize("changes", [
    dict(opt="sgd", batch_size=20, momentum=0.5, test_every=7),
    dict(opt="adam", lr=0.01, momentum=0.9, eig_k=2),
    dict(opt="flow", lr=0.5),
], ids=["sgd", "adam", "flow"])
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, changes):
    config = tiny(checkpoint_every=10, **changes)
    straight = runs.train(config, out=tmp_path / "a", progress=False)

    def interrupt(info):
        if info["step"] == 24:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.train(config, out=tmp_path / "b", progress=False, callback=interrupt)
    stopped = runs.load_run(tmp_path / "b")
    assert stopped.status == "interrupted" and len(stopped.metrics["step"]) == 25  # steps 0..24 recorded
    resumed = runs.resume(tmp_path / "b", progress=False)
    assert resumed.status == "finished"
    assert_same_metrics(straight.metrics, resumed.metrics)
    assert torch.equal(straight.final_params(), resumed.final_params())
    assert_same_metrics(runs.load_run(tmp_path / "b").metrics, straight.metrics)


@pytest.mark.parametrize("changes", [
    dict(opt="sgd", batch_size=16, momentum=0.9),
    dict(opt="gd"),
    dict(opt="nesterov", momentum=0.5, dtype="float32"),
    dict(opt="heavy_ball", momentum=0.9),
    dict(opt="adam", lr=0.01),
], ids=["sgd", "gd", "nesterov-float32", "heavy_ball", "adam"])
def test_tracking_does_not_perturb_the_trajectory(changes):
    """Full-batch runs reuse the training step's gradient graph at tracking steps: the
    gradient (hence the trajectory) must be the very same as without tracking. (Not
    gradient flow: its step size alpha / S is set by the tracked sharpness.)"""
    tracked = runs.train(tiny(**changes), progress=False)
    bare = runs.train(tiny(**changes, eig_every=None), progress=False)
    assert len(tracked.metrics["sharpness"]) == 6 and len(bare.metrics["sharpness"]) == 0
    assert np.array_equal(tracked.metrics["loss"], bare.metrics["loss"])
    assert torch.equal(tracked.final_params(), bare.final_params())


def test_full_batch_tracking_builds_no_gradient_graph_of_its_own(monkeypatch):
    """The products at a tracking step go through the training step's graph, and give the
    same sharpness as an operator that builds its own graph at the same parameters."""
    built = []
    original = hessian._grad_graph
    monkeypatch.setattr(hessian, "_grad_graph", lambda *a: built.append(1) or original(*a))
    run = runs.train(tiny(steps=11, eig_every=10, dtype="float64"), progress=False)
    assert built == []
    net = runs.train(tiny(steps=10, eig_every=10, dtype="float64"), progress=False).model()
    data = runs.build(run.config, "cpu").dataset
    v0 = torch.randn(run.final_params().numel(), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    own = hessian.sharpness(net, losses.mse, data.x_train, data.y_train, v0=v0, tol=1e-10)
    assert built == [1]
    assert run.metrics["sharpness"][1] == pytest.approx(own.top, rel=runs.EIG_TOL)


def test_huge_step_diverges_cleanly_and_keeps_the_records(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = runs.train(tiny(lr=1e4, steps=200), out=tmp_path, progress=False)
    m = run.metrics
    assert run.status == "diverged"
    stop = run.info["stop_step"]
    assert 0 < stop < 200 and np.array_equal(m["step"], np.arange(stop))
    assert np.all(np.isfinite(m["loss"])) and np.all(np.isfinite(m["sharpness"]))
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "diverged"
    assert_same_metrics(runs.load_run(tmp_path).metrics, m)


def test_goals_stop_the_run():
    run = runs.train(tiny(loss_goal=0.05, steps=500, eig_every=None), progress=False)
    loss = run.metrics["loss"]
    assert run.status == "goal_reached" and loss[-1] <= 0.05 and np.all(loss[:-1] > 0.05)
    run = runs.train(tiny(acc_goal=1.0, steps=500, eig_every=None), progress=False)
    assert run.status == "goal_reached" and run.metrics["accuracy"][-1] == 1.0


def test_lr_drop_changes_eta_and_threshold():
    run = runs.train(tiny(lr_drop_step=15, lr_drop_factor=0.25), progress=False)
    m = run.metrics
    assert np.allclose(m["lr"], np.where(np.arange(30) < 15, 0.1, 0.025))
    assert np.allclose(m["threshold"], np.where(m["eig_step"] < 15, 20.0, 80.0))


def test_adaptive_runs_record_the_preconditioned_sharpness():
    run = runs.train(tiny(opt="rmsprop", lr=0.001, beta2=0.99), progress=False)
    pre = run.metrics["preconditioned_sharpness"]
    assert np.isnan(pre[0]) and np.all(np.isfinite(pre[1:])) and np.all(pre[1:] > run.metrics["sharpness"][1:])
    assert np.allclose(run.metrics["threshold"], 2 / 0.001)


def test_cached_run_reuses_a_finished_run(tmp_path, monkeypatch):
    monkeypatch.setenv("EOSTEACH_RUNS", str(tmp_path))
    config = tiny()
    first = runs.cached_run(config, progress=False)
    assert first.path.parent == tmp_path and (first.path / "final.pt").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run must not train again")

    monkeypatch.setattr(runs, "_Trainer", no_training)
    again = runs.cached_run(runs.RunConfig(**TINY), progress=False)
    assert again.path == first.path and again.status == "finished"
    assert_same_metrics(first.metrics, again.metrics)
    assert torch.equal(again.final_params(), first.final_params())
    seen = []
    runs.cached_run(config, progress=False, callback=seen.append)
    assert [info["step"] for info in seen] == list(range(30)) and "sharpness" in seen[0]
    with pytest.raises(AssertionError, match="must not train"):
        runs.cached_run(tiny(seed=1), progress=False)
    assert runs.cache_path(tiny(seed=1)) != first.path


def test_run_folder_is_written_atomically(tmp_path, monkeypatch):
    written = []
    original = files.atomic_write_bytes

    def spy(path, data):
        written.append(path.name)
        return original(path, data)

    monkeypatch.setattr(files, "atomic_write_bytes", spy)
    run = runs.train(tiny(checkpoint_every=10), out=tmp_path, progress=False)
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"run.json", "metrics.npz", "final.pt", "checkpoint.pt"}
    assert names <= set(written)  # every file went through eosteach.files
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["config"] == run.config.to_dict() and info["status"] == "finished"
    for key in ("eosteach_version", "torch_version", "device", "seed", "wall_time_s"):
        assert key in info
    assert runs.load_run(tmp_path).config == run.config


def test_bad_settings_name_the_parameter():
    for changes, message in [
        (dict(arch="resnet"), "arch must be one of"),
        (dict(data="mnist"), "data must be one of"),
        (dict(opt="lbfgs"), "opt must be one of"),
        (dict(lr=0), "lr must be"),
        (dict(opt="heavy_ball", momentum=1.0), "momentum must lie in"),
        (dict(momentum=0.5), "momentum must be 0 for opt='gd'"),
        (dict(opt="sgd"), "batch_size"),
        (dict(steps=0), "steps must be"),
        (dict(dtype="float16"), "dtype must be one of"),
        (dict(acc_goal=2.0), "acc_goal"),
        (dict(opt="flow", eig_every=None), "eig_every"),
    ]:
        with pytest.raises(ValueError, match=message):
            tiny(**changes)
    with pytest.raises(FileNotFoundError):
        runs.load_run("/nonexistent/run")


def test_repr_of_a_cached_run_names_no_machine_path(tmp_path, monkeypatch):
    monkeypatch.setenv("EOSTEACH_RUNS", str(tmp_path / "cache"))
    run = runs.cached_run(tiny(steps=3, eig_every=None), progress=False)
    assert str(tmp_path) not in repr(run)
    assert f"path=<runs cache>/{run.path.name}" in repr(run)
    elsewhere = runs.train(tiny(steps=3, eig_every=None), out=tmp_path / "mine", progress=False)
    assert f"path={tmp_path / 'mine'}" in repr(elsewhere)


# --- batch sharpness along SGD (Andreyev & Beneventano, 2024) ----------------------------------


def test_batch_sharpness_option_keeps_every_earlier_cache_key():
    """The option is left out of to_dict at its default, so runs cached before it existed
    keep their keys (these keys were computed before the option was added)."""
    assert runs.RunConfig().key() == "33d5b761aa8c949d"
    assert runs.RunConfig(opt="sgd", batch_size=10, lr=0.05).key() == "36e18c3ea0a1a140"
    assert "batch_sharpness" not in runs.RunConfig().to_dict()
    on = tiny(opt="sgd", batch_size=16, batch_sharpness=3)
    assert on.to_dict()["batch_sharpness"] == 3 and runs.RunConfig.from_dict(on.to_dict()) == on
    assert on.key() != tiny(opt="sgd", batch_size=16).key()


@pytest.mark.parametrize("changes", [dict(opt="sgd", batch_size=16), dict(opt="gd")], ids=["sgd", "gd"])
def test_batch_sharpness_is_recorded_without_perturbing_the_trajectory(changes):
    with_bs = runs.train(tiny(dtype="float64", batch_sharpness=4, **changes), progress=False)
    without = runs.train(tiny(dtype="float64", **changes), progress=False)
    m = with_bs.metrics
    assert m["batch_sharpness"].shape == m["sharpness"].shape == (6,)
    for key in without.metrics:
        assert np.array_equal(m[key], without.metrics[key], equal_nan=True) or key == "n_products", key
    assert torch.equal(with_bs.final_params(), without.final_params())
    assert "batch_sharpness" not in without.metrics


def test_recorded_batch_sharpness_equals_the_library_at_those_parameters():
    """At step 10 (theta_10 = the end of the same run stopped after 10 steps), the recorded
    value is hessian.batch_sharpness with the run's own generator (seed + 2), whose state
    after the step-0 and step-5 records has drawn 2 x 4 batches."""
    config = tiny(dtype="float64", opt="sgd", batch_size=16, batch_sharpness=4)
    long = runs.train(config, progress=False)
    short = runs.train(runs.RunConfig.from_dict({**config.to_dict(), "steps": 10}), progress=False)
    setup = runs.build(config, "cpu")
    data, init = setup.dataset, setup.net
    gen = torch.Generator().manual_seed(config.seed + 2)
    first = hessian.batch_sharpness(init, losses.mse, data.x_train, data.y_train, 16, 4, generator=gen)
    assert long.metrics["batch_sharpness"][0] == pytest.approx(first, rel=1e-12)
    for _ in range(4):  # the step-5 record's draws
        torch.randperm(48, generator=gen)
    value = hessian.batch_sharpness(short.model(), losses.mse, data.x_train, data.y_train, 16, 4, generator=gen)
    assert long.metrics["batch_sharpness"][2] == pytest.approx(value, rel=1e-12)
    # full-batch GD: one batch, all examples, the curvature along the full gradient, at most the sharpness
    gd = runs.train(tiny(dtype="float64", batch_sharpness=2, eig_every=5), progress=False).metrics
    assert np.all(gd["batch_sharpness"] <= gd["sharpness"] * (1 + runs.EIG_TOL))


def test_resume_with_batch_sharpness_is_bit_for_bit(tmp_path):
    config = tiny(opt="sgd", batch_size=20, checkpoint_every=10, batch_sharpness=3)
    straight = runs.train(config, out=tmp_path / "a", progress=False)

    def interrupt(info):
        if info["step"] == 24:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.train(config, out=tmp_path / "b", progress=False, callback=interrupt)
    resumed = runs.resume(tmp_path / "b", progress=False)
    assert_same_metrics(straight.metrics, resumed.metrics)


@pytest.mark.parametrize("changes, word", [
    (dict(opt="adam", lr=0.01, batch_sharpness=2), "batch_sharpness"),
    (dict(opt="sgd", batch_size=8, batch_sharpness=2, eig_every=None), "eig_every"),
    (dict(opt="sgd", batch_size=8, batch_sharpness=0), "batch_sharpness"),
])
def test_bad_batch_sharpness_settings_name_the_parameter(changes, word):
    with pytest.raises(ValueError, match=word):
        tiny(**changes)


# --- build, the recorder and its schema --------------------------------------------------------


def test_build_gives_what_train_starts_from():
    config = tiny(dtype="float64", init_scale=0.5)
    setup = runs.build(config, "cpu")
    assert setup.device == torch.device("cpu") and setup.loss_fn is losses.get_loss("mse")
    assert setup.dataset.x_train.shape == (48, setup.dataset.input_dim) and setup.dataset.synthetic
    assert next(setup.net.parameters()).dtype == torch.float64
    theta0 = runs.train(runs.RunConfig.from_dict({**config.to_dict(), "steps": 1, "eig_every": None}),
                        progress=False).metrics
    with torch.no_grad():
        assert float(setup.loss_fn(setup.net(setup.dataset.x_train), setup.dataset.y_train)) == theta0["loss"][0]
    with pytest.raises(ValueError, match="config"):
        runs.build(config.to_dict())


def test_recorder_keeps_the_declared_series_only():
    rec = runs.Recorder.for_config(tiny(eig_k=2))
    assert "preconditioned_sharpness" not in rec and "full_loss" not in rec and "n_products" in rec
    rec.append("step", step=0, loss=1.0, accuracy=0.5, lr=0.1, time=0.0)
    with pytest.raises(ValueError, match="sharpnes"):  # a misspelt name
        rec.append("step", step=1, loss=1.0, accuracy=0.5, lr=0.1, time=0.1, sharpnes=3.0)
    with pytest.raises(ValueError, match="time"):  # a missing one
        rec.append("step", step=1, loss=1.0, accuracy=0.5, lr=0.1)
    with pytest.raises(ValueError, match="full_loss"):  # declared, but not recorded by a gd run
        rec.append("eig_step", eig_step=0, sharpness=1.0, eigenvalues=np.ones(2), threshold=20.0, distance=0.0,
                   n_products=5, full_loss=1.0)
    with pytest.raises(ValueError, match="group"):
        rec.append("epoch", epoch=0)
    with pytest.raises(ValueError, match="SERIES"):
        runs.Recorder(["step", "epoch"])
    a = rec.arrays()
    assert a["step"].dtype == np.int64 and a["loss"].dtype == np.float64 and a["n_products"].dtype == np.int64
    assert a["eigenvalues"].shape == (0, 2) and a["test_step"].shape == (0,)


def test_recorder_round_trip_and_truncate_for_resume():
    run = runs.train(tiny(test_every=10, eig_k=2), progress=False)
    rec = runs.Recorder.from_metrics(run.metrics, run.config)
    assert_same_metrics(rec.arrays(), run.metrics)
    assert list(rec.arrays()) == list(run.metrics)  # the order of metrics.npz
    rec.truncate(12)
    a = rec.arrays()
    assert np.array_equal(a["step"], np.arange(12)) and np.array_equal(a["eig_step"], [0, 5, 10])
    assert np.array_equal(a["test_step"], [0, 10]) and a["eigenvalues"].shape == (3, 2)
    with pytest.raises(ValueError, match="undeclared"):
        runs.Recorder.from_metrics({**run.metrics, "extra": np.zeros(3)}, run.config)


def test_series_and_module_docstring_agree():
    import textwrap

    assert textwrap.indent(runs.records_table(), "    ") in runs.__doc__
    for changes in (dict(), dict(opt="adam", lr=0.01), dict(opt="sgd", batch_size=16, batch_sharpness=2)):
        config = tiny(test_every=10, **changes)
        assert list(runs.train(config, progress=False).metrics) == list(runs.Recorder.for_config(config).values)


def test_a_divergence_found_at_a_checkpoint_ends_the_run(tmp_path, monkeypatch):
    """On CUDA losses reach the host in blocks (SYNC_EVERY_CUDA); a block that a checkpoint
    flushes and that holds a non-finite loss must end the run there as "diverged", not train
    on. Simulated on the CPU by syncing every 25 steps and checkpointing every 5."""
    start = runs._Trainer._start

    def blocks_of_25(self, progress, callback):
        start(self, progress, callback)
        self.sync_every = 25

    monkeypatch.setattr(runs._Trainer, "_start", blocks_of_25)
    config = runs.RunConfig(data="synthetic", n_train=40, width=8, steps=200, eig_every=None, lr=50.0,
                            checkpoint_every=5)
    run = runs.train(config, out=tmp_path / "run", progress=False)
    assert run.status == "diverged"
    stop = run.info["stop_step"]
    assert stop < 25, stop  # found at a checkpoint, before the first block of 25 was full
    assert run.metrics["step"][-1] == stop - 1 and np.isfinite(run.metrics["loss"]).all()
