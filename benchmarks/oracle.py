"""The Krylov floor: the fewest Lanczos steps after which the top Ritz value is within a
relative ``tol`` of a reference eigenvalue.

No stopping rule of a Lanczos solve from a given start can stop sooner and be that accurate:
the Ritz values after m steps are fixed by the Krylov space K_m(H, v0), whatever decides to
stop. The benchmarks print this floor beside what the engine's rules use, so a target can be
checked against what the method could reach at the least.
"""

from __future__ import annotations

import torch

from eosteach import hessian


def fewest_lanczos_steps(op, v0, reference, *, tol=1e-3, max_products=40, vector_dtype=None, seed=0):
    """The fewest steps m (1..max_products) with |theta_1(K_m) - reference| <= tol |reference|,
    or None. ``op``: a ``hessian.HessianOperator``; v0, vector_dtype, seed: as for
    ``hessian.lanczos`` (pass the solve's own to reproduce its start vector). The basis and
    its products are recorded while ``lanczos`` runs with a rule it cannot meet, then
    Rayleigh-Ritz (float64) on the first m vectors."""
    basis, images = [], []

    def recording(v):
        w = op.matvec(v)
        basis.append(v.double())
        images.append(w.double())
        return w

    hessian.lanczos(recording, op.n, v0=v0, tol=1e-12, stop="residual", max_products=max_products,
                    device=op.device, dtype=op.dtype, vector_dtype=vector_dtype, seed=seed)
    q, hq = torch.stack(basis, 1), torch.stack(images, 1)
    for m in range(1, q.shape[1] + 1):
        projected = q[:, :m].T @ hq[:, :m]
        top = float(torch.linalg.eigvalsh(0.5 * (projected + projected.T))[-1])
        if abs(top - reference) <= tol * abs(reference):
            return m
    return None
