"""Sphinx configuration of the eosteach website (built by ``python -m eosteach.site build``).

``eosteach.site`` stages these sources together with the executed lessons, the instructor
notes and a local MathJax into one folder and runs Sphinx on it; the lessons are rendered
from their saved outputs (``nb_execution_mode = "off"``), never re-executed. Nothing is
fetched at build time, and the pages load nothing from outside the site.
"""

project = "eosteach"
author = "eosteach contributors"
copyright = "eosteach contributors"
html_title = "eosteach: gradient descent at the edge of stability"

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "_lessons_table.md"]  # included by index.md
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["eosteach.css"]

# The lessons are executed notebooks: render their saved outputs, never run them.
nb_execution_mode = "off"
nb_output_stderr = "remove"  # tqdm progress bars: noise in a static page
nb_ipywidgets_js = {}  # widget outputs are replaced by their saved figure (eosteach.site)
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_update_mathjax = False
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # lessons open with "#" and use "###" for exercises

# A local MathJax 3 (from the sphinx-mathjax-offline package, staged into _static/mathjax by
# eosteach.site): the pages typeset their math with no network.
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_context = {"default_mode": "light"}  # the figures have white backgrounds
html_sourcelink_suffix = ""  # _sources/<lesson>.ipynb is the notebook itself (the download button)
html_theme_options = {
    "repository_url": "https://github.com/eosteach/eosteach",  # the README's placeholder <org>/<repo>
    "repository_branch": "HEAD",
    "path_to_docs": "lessons",  # a lesson page foo.ipynb is lessons/foo.ipynb in the repository
    "use_repository_button": True,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "launch_buttons": {"binderhub_url": "https://mybinder.org", "notebook_interface": "jupyterlab"},
    "navigation_with_keys": False,
}
