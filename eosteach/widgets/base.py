"""A matplotlib figure shown inside an ipywidgets layout and updated in place."""

from __future__ import annotations

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
