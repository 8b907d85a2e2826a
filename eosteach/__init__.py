"""eosteach: lessons and a small library on gradient descent at the edge of stability.

Notation used everywhere (Cohen et al., ICLR 2021):

    theta^(k+1) = theta^(k) - eta * grad L(theta^(k)),
    S(theta)    = lambda_max(Hessian of L at theta)   (the *sharpness*).

Modules, one idea each:

    config      scale of the lessons (EOSTEACH_FAST), device choice, cache folders
    validate    the checks behind every ValueError on bad input
    files       atomic writes
    plotting    the shared figure style
    claims      the lessons' result words (hovers_at, settles_below, ...) as checks with bands
    quadratic   quadratic models, GD / heavy-ball / Nesterov / frozen Adam, thresholds
    symbolic    sympy derivations of the descent lemma and the stability thresholds
    hessian     Hessian-vector products, Lanczos, power iteration, sharpness
    data        CIFAR-10 (official binary version) and a synthetic stand-in
    models      fc-tanh / fc-relu / fc-elu / cnn networks
    losses      MSE (Cohen et al. convention) and cross-entropy
    optim       exact full-batch optimisers and learning-rate schedules
    runs        training runs with sharpness tracking, run folders, checkpoints, resume, cache
    sweeps      grids of runs on Dask distributed (local cluster or a scheduler address)
    reference   Cohen et al.'s Figure 1 at the paper's scale, shipped as reference runs
    analysis    the quadratic model's predicted loss change along a GD run (lesson 4)
    cli         the ``eosteach`` command
    selfstab    the self-stabilization map and ODE (Damian, Nichani & Lee, 2022)
    stable_dynamics  the stable set, constrained trajectory and central flow on a network
    minimalist  the minimalist model of Yoo, Song & Yun (ICML 2025)
    widgets     the interactive demos of the lessons (one module per topic)
    exercises   checkers for the lessons' coding exercises (one module per topic)
    student     student copies of the lessons (solutions removed)
"""

__version__ = "0.1.0"
