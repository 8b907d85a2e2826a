"""Interactive demos for the lessons (ipywidgets 8 + matplotlib).

Every demo draws into one matplotlib Figure that lives as long as the widget and is
re-rendered into an ``ipywidgets.Image`` when a control moves (see ``FigureView``): the
picture updates in place, no figure piles up, and the same code runs in JupyterLab,
VS Code, Colab and in headless tests.
"""

from .base import FigureView  # noqa: F401
