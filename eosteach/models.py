"""The networks of Cohen et al. (ICLR 2021), built the way their code builds them.

* ``fc-tanh``, ``fc-relu``, ``fc-elu``: fully connected, ``depth`` hidden layers of
  ``width`` units (default 200-200, as in the paper), each Linear followed by the
  activation, then a Linear read-out to the c classes. Biases everywhere by default.
* ``cnn-relu``, ``cnn-tanh``: ``depth`` blocks (default two) of a 3x3 convolution with
  ``width`` channels (default 32, padding 1), the activation and a 2x2 max-pool, then a
  Linear read-out. Inputs stay flat (n, 3072); the network reshapes them to (n, 3, 32, 32),
  the (C, H, W) order of ``eosteach.data``.

Initialisation is PyTorch's default (Kaiming-uniform weights, uniform biases), drawn from
the seed ``seed`` inside ``torch.random.fork_rng``: the same seed gives the same network on
every device, and the caller's global random state is left exactly as it was.

For CPU lessons, ``LESSON_ARCH`` is the preset the lessons may use: fc-tanh with two
hidden layers of 100 units (0.32 M parameters instead of 0.66 M; the first layer,
3072 x width, dominates the cost, so a GD step costs about half). Its sharpness at
initialisation (seed 0, MSE, first 1,000 CIFAR-10 images) is about 86, against about 77
for 200-200, so step sizes eta <= 0.02 (2/eta >= 100) start below the edge of stability.
``make_model(**LESSON_ARCH)`` or ``lesson_model()`` build it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import config, validate

ARCHS = ("fc-tanh", "fc-relu", "fc-elu", "cnn-relu", "cnn-tanh")
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
DEFAULT_WIDTH = {"fc": 200, "cnn": 32}
DEFAULT_DEPTH = 2
IMAGE_CHANNELS = 3

LESSON_ARCH = {"arch": "fc-tanh", "width": 100, "depth": 2}


def _widths(arch: str, width, depth) -> list[int]:
    """The list of hidden widths (fc) or channel counts (cnn) from ``width`` and ``depth``."""
    family = arch.split("-")[0]
    if width is None:
        width = DEFAULT_WIDTH[family]
    if isinstance(width, Sequence) and not isinstance(width, str):
        widths = [validate.positive_int("width", w) for w in width]
        if not widths:
            raise ValueError("width must be a positive integer or a non-empty list of them, got []")
        if depth is not None and validate.positive_int("depth", depth) != len(widths):
            raise ValueError(f"depth must equal len(width) = {len(widths)} when width is a list, got {depth!r}")
        return widths
    depth = DEFAULT_DEPTH if depth is None else validate.positive_int("depth", depth)
    return [validate.positive_int("width", width)] * depth


def _image_side(input_dim: int, depth: int) -> int:
    side = round((input_dim / IMAGE_CHANNELS) ** 0.5)
    if IMAGE_CHANNELS * side * side != input_dim:
        raise ValueError(f"input_dim must be 3 * s * s (an RGB s x s image) for a cnn, got {input_dim}")
    if side % (2 ** depth):
        raise ValueError(f"depth must allow {depth} halvings of the {side}x{side} image; got depth={depth}")
    return side


def _fully_connected(widths, activation, input_dim, n_classes, bias, factory) -> nn.Sequential:
    layers: list[nn.Module] = []
    fan_in = input_dim
    for width in widths:
        layers += [nn.Linear(fan_in, width, bias=bias, **factory), ACTIVATIONS[activation]()]
        fan_in = width
    layers.append(nn.Linear(fan_in, n_classes, bias=bias, **factory))
    return nn.Sequential(*layers)


def _convolutional(widths, activation, input_dim, n_classes, bias, factory) -> nn.Sequential:
    side = _image_side(input_dim, len(widths))
    layers: list[nn.Module] = [nn.Unflatten(1, (IMAGE_CHANNELS, side, side))]
    channels = IMAGE_CHANNELS
    for width in widths:
        layers += [
            nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=bias, **factory),
            ACTIVATIONS[activation](),
            nn.MaxPool2d(2),
        ]
        channels, side = width, side // 2
    layers += [nn.Flatten(), nn.Linear(channels * side * side, n_classes, bias=bias, **factory)]
    return nn.Sequential(*layers)


def make_model(
    arch: str,
    *,
    input_dim: int = 3072,
    n_classes: int = 10,
    width=None,
    depth: int | None = None,
    bias: bool = True,
    seed: int = 0,
    dtype=torch.float32,
    device=None,
) -> nn.Sequential:
    """The network ``arch`` (one of ``ARCHS``) mapping (n, input_dim) inputs to (n, n_classes) outputs.

    width: units per hidden layer (fc, default 200) or channels per convolution (cnn,
        default 32); or a list of them, one per layer, which then also sets the depth.
    depth: number of hidden layers (fc) or convolution blocks (cnn); default 2.
    seed: the initialisation seed (PyTorch's default init; the global RNG is untouched).
    dtype, device: where the parameters live (drawn on the CPU, then moved, so a seed
        gives the same weights on every device).
    The returned module has ``.arch`` and ``.widths`` attributes describing it.
    """
    validate.choice("arch", arch, ARCHS)
    input_dim = validate.positive_int("input_dim", input_dim)
    n_classes = validate.positive_int("n_classes", n_classes)
    seed = validate.positive_int("seed", seed, minimum=0)
    if not isinstance(bias, bool):
        raise ValueError(f"bias must be True or False, got {bias!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a torch floating dtype such as torch.float32 or torch.float64, got {dtype!r}")
    if device is not None:
        device = config.device(device)
    widths = _widths(arch, width, depth)
    family, activation = arch.split("-")
    build = _fully_connected if family == "fc" else _convolutional
    if family == "cnn":
        _image_side(input_dim, len(widths))  # fail before drawing any weights

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build(widths, activation, input_dim, n_classes, bias, {"dtype": dtype})
    model.arch = arch
    model.widths = tuple(widths)
    if device is not None:
        model = model.to(device)
    return model


def lesson_model(*, seed: int = 0, n_classes: int = 10, dtype=torch.float32, device=None) -> nn.Sequential:
    """The CPU-lesson preset ``LESSON_ARCH`` (fc-tanh, 100-100) with the given seed."""
    return make_model(**LESSON_ARCH, seed=seed, n_classes=n_classes, dtype=dtype, device=device)


def n_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (the n of the Hessian's n x n)."""
    return sum(p.numel() for p in model.parameters())
