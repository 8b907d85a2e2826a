"""The lesson-6 scrubber of GD, constrained trajectory and central flow, driven headless."""

import warnings

import numpy as np
import pytest

from eosteach.widgets.selfstab import paths_scrubber

PNG = b"\x89PNG\r\n\x1a\n"


def _paths(T=30):
    t = np.arange(T)
    return t, {
        "GD": {"loss": 1 / (1 + t) + 0.05 * (-1.0) ** t, "sharpness": 10 + 2 * np.sin(t)},
        "flow": {"loss": 1 / (1 + t), "sharpness": np.full(T, 10.0)},
    }


def test_scrubber_extremes_update_the_picture_in_place():
    steps, paths = _paths()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        box = paths_scrubber(steps, paths, threshold=10.0)
        image = box.view.image
        last = box.view.png
        assert last.startswith(PNG)
        for value in (0, 1, box.controls["step"].max // 2, box.controls["step"].max):
            box.controls["step"].value = value
            assert box.view.image is image and box.view.png.startswith(PNG)
            assert box.view.png != last
            last = box.view.png
    # The text reports each path at the chosen step: GD at step 29 has S = 10 + 2 sin 29.
    assert f"S/(2/η) {(10 + 2 * np.sin(29)) / 10:.3f}" in box.message.value
    box.controls["step"].value = 0
    assert "step 0" in box.message.value and "flow: loss 1.0000, S/(2/η) 1.000" in box.message.value


def test_scrubber_rejects_mismatched_paths():
    steps, paths = _paths()
    with pytest.raises(ValueError, match="paths must be a non-empty dict"):
        paths_scrubber(steps, {}, 10.0)
    paths["flow"]["loss"] = paths["flow"]["loss"][:-1]
    with pytest.raises(ValueError, match=r"paths\['flow'\]\['loss'\] must be an array of shape \(30,\)"):
        paths_scrubber(steps, paths, 10.0)
    with pytest.raises(ValueError, match="steps must be a 1-D array"):
        paths_scrubber([0], {"GD": {"loss": [1.0], "sharpness": [1.0]}}, 10.0)


def test_scrubber_takes_one_colour_per_path():
    steps, paths = _paths()
    box = paths_scrubber(steps, paths, 10.0, colors=["#2ca02c", "k"])
    assert box.view.png.startswith(PNG)
    assert box.view.axes[0].get_lines()[0].get_color() == "#2ca02c"
    with pytest.raises(ValueError, match="one colour per path"):
        paths_scrubber(steps, paths, 10.0, colors=["k"])
