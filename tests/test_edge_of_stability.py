"""Progressive sharpening and the edge of stability on real data (Cohen et al., ICLR 2021),
at lesson scale: fc-tanh (two hidden layers of 100 units, the CPU-lesson preset), the first
1,000 CIFAR-10 training images, MSE, full-batch GD at eta = 0.02 (2/eta = 100).

Claims checked:
  * the initial sharpness (about 86) is below 2/eta;
  * the sharpness rises to 2/eta, then stays within [0.9, 1.25] x 2/eta for the rest of the run;
  * the training loss is non-monotone from step to step at the edge of stability, yet its
    mean falls from every window of 100 steps to the next.
The last point of the band is re-checked at the final parameters with scipy's eigsh (the
reference method of Cohen et al.), independently of the runner's Lanczos.
Runs in about a minute on 2 CPU cores (1,000 GD steps, sharpness every 25 steps).
"""

import numpy as np
import pytest
import torch

from eosteach import losses, runs

ETA = 0.02
CONFIG = dict(data="cifar10", n_train=1000, arch="fc-tanh", width=100, depth=2, loss="mse", opt="gd", lr=ETA,
              steps=1000, eig_every=25, seed=0, device="cpu", dtype="float32")


def top_eigenvalue_eigsh(net, x, y) -> float:
    from scipy.sparse.linalg import LinearOperator, eigsh

    params = list(net.parameters())
    g = torch.autograd.grad(losses.mse(net(x), y), params, create_graph=True)
    flat = torch.cat([t.reshape(-1) for t in g])
    n = flat.numel()

    def hv(v):
        v = torch.from_numpy(np.asarray(v, dtype=np.float32).reshape(-1))
        h = torch.autograd.grad(flat @ v, params, retain_graph=True)
        return torch.cat([t.reshape(-1) for t in h]).double().numpy()

    return float(eigsh(LinearOperator((n, n), matvec=hv, dtype=np.float64), k=1, which="LA", tol=1e-4)[0][0])


@pytest.mark.slow
def test_progressive_sharpening_then_edge_of_stability(cifar_root, monkeypatch):
    monkeypatch.setenv("EOSTEACH_DATA", str(cifar_root))
    run = runs.train(runs.RunConfig(**CONFIG), progress=False)
    assert run.status == "finished"
    m = run.metrics
    threshold = 2.0 / ETA
    assert np.allclose(m["threshold"], threshold)
    ratio = m["sharpness"] / threshold

    # Progressive sharpening: from below 2/eta up to it.
    assert ratio[0] < 0.9, f"initial sharpness {m['sharpness'][0]:.1f} should be below 0.9 x 2/eta"
    assert np.any(ratio >= 1.0), f"sharpness never reached 2/eta (max {ratio.max():.3f} x 2/eta)"
    first = int(np.argmax(ratio >= 1.0))
    reached = int(m["eig_step"][first])
    assert reached <= 500, f"sharpness reached 2/eta only at step {reached}"

    # Edge of stability: hovering at 2/eta for the rest of the run.
    rest = ratio[first:]
    assert rest.min() >= 0.9 and rest.max() <= 1.25, (
        f"after step {reached}, sharpness / (2/eta) ranged over [{rest.min():.3f}, {rest.max():.3f}]")

    # The loss: non-monotone step to step at the edge, falling over windows of 100 steps.
    loss = m["loss"]
    increases = np.mean(np.diff(loss[reached:]) > 0)
    assert increases > 0.1, f"only {increases:.0%} of the steps after {reached} raised the loss"
    windows = loss.reshape(-1, 100).mean(axis=1)
    assert np.all(np.diff(windows) < 0), f"window means {np.round(windows, 4)} are not decreasing"

    # Independent check at the final parameters (scipy eigsh over autograd products).
    net = run.model()
    data = runs.build(run.config, "cpu").dataset
    final = top_eigenvalue_eigsh(net, data.x_train, data.y_train) / threshold
    assert 0.9 <= final <= 1.25, f"final sharpness {final:.3f} x 2/eta (eigsh)"
