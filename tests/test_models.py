"""Networks: shapes, parameter counts by hand, PyTorch's default init from the seed (rebuilt
here layer by layer), the global RNG left untouched, the CNN's (C, H, W) reshape, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from eosteach import models


def fc_count(widths, d=3072, c=10):
    sizes = [d, *widths, c]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


@pytest.mark.parametrize("arch", models.ARCHS)
def test_every_arch_maps_flat_inputs_to_class_scores(arch):
    model = models.make_model(arch, n_classes=7, seed=1)
    out = model(torch.randn(5, 3072))
    assert out.shape == (5, 7) and model.arch == arch


def test_parameter_counts():
    assert models.n_parameters(models.make_model("fc-tanh")) == fc_count([200, 200]) == 656_810
    assert models.n_parameters(models.make_model("fc-relu", width=[50, 30, 20])) == fc_count([50, 30, 20])
    # conv 3->32 (3x3) + conv 32->32 (3x3) + linear 32*8*8 -> 10, with biases
    cnn = 3 * 32 * 9 + 32 + 32 * 32 * 9 + 32 + 32 * 8 * 8 * 10 + 10
    assert models.n_parameters(models.make_model("cnn-relu")) == cnn == 30_634
    no_bias = models.make_model("fc-tanh", width=10, depth=1, bias=False)
    assert models.n_parameters(no_bias) == 3072 * 10 + 10 * 10


def test_default_init_is_pytorchs_drawn_from_the_seed():
    torch.manual_seed(4)
    reference = [nn.Linear(3072, 200), nn.Linear(200, 200), nn.Linear(200, 10)]
    expected = [p for layer in reference for p in layer.parameters()]
    model = models.make_model("fc-elu", seed=4)
    got = list(model.parameters())
    assert len(got) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert [type(m) for m in model] == [nn.Linear, nn.ELU, nn.Linear, nn.ELU, nn.Linear]


def test_seed_is_local_and_reproducible():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = models.make_model("cnn-tanh", seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    b = models.make_model("cnn-tanh", seed=5)
    c = models.make_model("cnn-tanh", seed=6)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_cnn_reads_inputs_in_channel_height_width_order():
    model = models.make_model("cnn-relu", seed=2)
    x = torch.randn(3, 3072)
    image = x.view(3, 3, 32, 32)
    conv1, conv2, linear = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert conv1.kernel_size == (3, 3) and conv1.out_channels == conv2.out_channels == 32
    h = nn.functional.max_pool2d(torch.relu(conv1(image)), 2)
    h = nn.functional.max_pool2d(torch.relu(conv2(h)), 2)
    torch.testing.assert_close(model(x), linear(h.flatten(1)))


def test_dtype_device_and_lesson_preset():
    model = models.make_model("fc-tanh", width=8, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 for p in model.parameters())
    lesson = models.lesson_model(seed=3)
    assert lesson.arch == models.LESSON_ARCH["arch"]
    assert lesson.widths == (models.LESSON_ARCH["width"],) * models.LESSON_ARCH["depth"]
    assert all(torch.equal(p, q) for p, q in zip(lesson.parameters(), models.make_model(**models.LESSON_ARCH, seed=3).parameters()))


@pytest.mark.parametrize(
    "kwargs, parameter",
    [
        ({"arch": "fc-sigmoid"}, "arch must be one of 'fc-tanh'"),
        ({"arch": "fc-tanh", "width": 0}, "width"),
        ({"arch": "fc-tanh", "width": [10, 0]}, "width"),
        ({"arch": "fc-tanh", "depth": 0}, "depth"),
        ({"arch": "fc-tanh", "width": [10, 10], "depth": 3}, "depth"),
        ({"arch": "fc-tanh", "n_classes": 0}, "n_classes"),
        ({"arch": "fc-tanh", "seed": -1}, "seed"),
        ({"arch": "fc-tanh", "bias": "yes"}, "bias"),
        ({"arch": "fc-tanh", "dtype": torch.int32}, "dtype"),
        ({"arch": "cnn-relu", "input_dim": 100}, "input_dim"),
        ({"arch": "cnn-relu", "depth": 6}, "depth"),
        ({"arch": "fc-tanh", "device": "tpu"}, "device"),
    ],
)
def test_bad_settings_raise_value_error_naming_the_parameter(kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        models.make_model(**kwargs)
