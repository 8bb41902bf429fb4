"""The course as a book: ``make book`` (``python -m hba_lib.book``) builds an HTML site of the
notebooks executed at their defaults, the exercises, the docs pages, the glossary and the
algorithm reference; ``python -m hba_lib.book.check`` checks it in headless Chromium.

- :mod:`hba_lib.book.notebooks`: the notebooks, found as ``notebooks/NN_*.py``; their executed
  copies, cached by the hash of their source (``make demo``'s reused).
- :mod:`hba_lib.book.pages`: the source tree generated at build time (landing page, notebook
  pages with a header and the exercises' toggles, exercises page, handout, docs with their
  links pointed at the book's pages).
- :mod:`hba_lib.book.build`: the build (``sphinx-build -W`` with ``book/conf.py``).
- :mod:`hba_lib.book.sphinx_ext`: MathJax 3 served from the site (offline).
- :mod:`hba_lib.book.check`: the browser check (console errors, images, links and anchors,
  equations, search, toggles) and the screenshots.

How to build, read and check it, and why these tools: ``docs/notebooks.md``.
"""
