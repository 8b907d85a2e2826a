"""eosteach.widgets.base: the figure view and the static fallback of a widget box."""

from __future__ import annotations

import base64
import io

import ipywidgets as widgets
import matplotlib.image as mpimg
import pytest
from IPython.core.formatters import DisplayFormatter

from eosteach.widgets import base


def _box():
    view = base.FigureView(1, 1, figsize=(3, 2), dpi=50)
    view.axes[0].plot([0, 1], [1, 0])
    view.refresh()
    return widgets.VBox([widgets.HTML("demo"), view.image]), view


def _decode(b64: str):
    png = base64.b64decode(b64)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(png), format="png")


def test_bundle_holds_the_widget_view_and_a_png_that_decodes():
    box, view = _box()
    assert base.static_fallback(box, view) is box
    data = box._repr_mimebundle_()
    assert base.WIDGET_MIME in data and data[base.WIDGET_MIME]["model_id"] == box.model_id
    assert "text/plain" in data
    img = _decode(data[base.PNG_MIME])
    assert img.shape[1] / img.shape[0] == pytest.approx(1.5, rel=0.02)  # figsize (3, 2)


def test_ipython_display_formatter_sees_both():
    """The path a notebook takes: IPython's formatter gives the widget view and the PNG."""
    box, view = _box()
    base.static_fallback(box, view)
    data, _ = DisplayFormatter().format(box)
    assert base.WIDGET_MIME in data and base.PNG_MIME in data
    _decode(data[base.PNG_MIME])


def test_png_is_the_current_figure():
    box, view = _box()
    base.static_fallback(box, view)
    first = box._repr_mimebundle_()[base.PNG_MIME]
    view.axes[0].plot([0, 1], [0, 1], lw=5)
    view.refresh()
    assert box._repr_mimebundle_()[base.PNG_MIME] != first
    assert base64.b64decode(box._repr_mimebundle_()[base.PNG_MIME]) == view.png


def test_unrendered_view_is_rendered_on_demand():
    view = base.FigureView(1, 1, figsize=(2, 2), dpi=40)
    box = base.static_fallback(widgets.VBox([view.image]), view)
    _decode(box._repr_mimebundle_()[base.PNG_MIME])


def test_bad_input():
    box, view = _box()
    with pytest.raises(ValueError, match="box"):
        base.static_fallback("not a widget", view)
    with pytest.raises(ValueError, match="view"):
        base.static_fallback(box, object())
