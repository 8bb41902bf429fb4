"""Sphinx configuration of the course book (``make book``; ``python -m hba_lib.book``).

The source tree is generated at build time into ``runs/book/src`` by :mod:`hba_lib.book`
(never into the repository); this file and ``index.md`` (the landing page's prose) are the
committed part. Everything here works offline: MathJax 3 comes from the npm package
``mathjax`` installed by ``make setup`` (copied into ``_static/mathjax``), the theme ships its own assets,
and no widget JavaScript is loaded from a CDN.
"""

project = "hba: heuristic black-box attacks on video models, a course"
author = "the hba project"
copyright = "the hba project (MIT)"

extensions = ["myst_nb", "sphinx_design", "hba_lib.book.sphinx_ext"]

# the sources: generated pages (.md) and executed notebooks (.ipynb, never run again here)
exclude_patterns = ["_notebook_files/**", "**.ipynb_checkpoints"]
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no require.js / widget manager from a CDN; widget outputs show their text
nb_output_stderr = "show"  # as in JupyterLab (the one line today: LiteRT says it made its CPU delegate)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links resolve, as on GitHub

# MathJax 3 from the npm package mathjax (make setup installs it into the venv), copied into
# _static/mathjax by hba_lib.book.sphinx_ext; MyST adds its mathjax3_config
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_title = "hba · the course"
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": False,  # each notebook page has its own download link and commands
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
}
html_context = {"default_mode": "light"}  # an empty mode is a console error of the theme
html_favicon = "_static/favicon.png"  # else the browser asks for /favicon.ico and gets a 404
html_static_path = ["_static"]
html_last_updated_fmt = None
html_show_sourcelink = False
html_copy_source = False
