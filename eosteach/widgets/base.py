"""A matplotlib figure shown inside an ipywidgets layout and updated in place.

``FigureView`` owns the figure; ``static_fallback(box, view)`` makes a widget box carry the
figure's current PNG in its display data too, so that a saved notebook shows the figure
where no widget front end runs (GitHub, nbconvert to PDF or HTML without the widget
state, slides): JupyterLab, VS Code and Colab still render the live widget, which they
rank above image/png.
"""

from __future__ import annotations

import base64
import io

import ipywidgets as widgets
from matplotlib.figure import Figure

from ..plotting import use_style


class FigureView:
    """Own one ``matplotlib.figure.Figure`` and show it as an ``ipywidgets.Image``.

    The figure is made without pyplot, so the notebook's inline backend never prints a
    second copy. Change the artists (``line.set_data``, ...) and call ``refresh()``: the
    image is re-rendered to PNG and swapped in place.
    """

    def __init__(self, nrows: int = 1, ncols: int = 1, *, figsize=(10, 4), dpi: int = 80, **subplot_kw):
        use_style()
        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        axes = self.figure.subplots(nrows, ncols, squeeze=False, **subplot_kw)
        self.axes = axes.ravel().tolist()
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="100%", max_width=f"{int(figsize[0] * dpi)}px"))

    def refresh(self) -> None:
        """Render the figure to PNG and show it."""
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png")
        self.image.value = buf.getvalue()

    @property
    def png(self) -> bytes:
        """The PNG bytes currently shown."""
        return bytes(self.image.value)


PNG_MIME = "image/png"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def static_fallback(box, view: FigureView):
    """Give the widget ``box`` (an ``ipywidgets.DOMWidget``, e.g. the VBox a demo builder
    returns) a ``_repr_mimebundle_`` that adds ``view``'s current figure as "image/png"
    (base64 text, as in a notebook's output) to ipywidgets' own bundle (text/plain and
    the widget view). Front ends with a widget manager show the live widget; the others
    (GitHub, PDF, static HTML) show the PNG instead of "VBox(children=...)". The PNG is
    the figure as it is when the cell's output is made. Returns ``box``.

    Raises ValueError when ``box`` is not an ipywidgets widget or ``view`` not a FigureView."""
    if not isinstance(box, widgets.Widget):
        raise ValueError(f"box must be an ipywidgets widget, got {type(box).__name__}")
    if not isinstance(view, FigureView):
        raise ValueError(f"view must be an eosteach.widgets.base.FigureView, got {type(view).__name__}")
    widget_bundle = type(box)._repr_mimebundle_.__get__(box)

    def bundle(**kwargs):
        data = widget_bundle(**kwargs)
        data = dict(data or {})
        if not view.png:
            view.refresh()
        data[PNG_MIME] = base64.b64encode(view.png).decode("ascii")
        return data

    box._repr_mimebundle_ = bundle
    return box
