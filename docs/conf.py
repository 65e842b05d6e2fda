"""Sphinx configuration of the jointinv documentation.

Build (from the repository root, no network needed)::

    .venv/bin/python -m sphinx -b html -W docs docs/_build/html

The gallery's examples are shown, not run (they invert real problems, minutes
each); ``-D plot_gallery=1`` runs them and adds their figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # this checkout's jointinv, installed or not

import jointinv  # noqa: E402

project = "jointinv"
author = "jointinv developers"
copyright = "jointinv developers"  # noqa: A001
version = release = jointinv.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "config_reference",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# examples/: sphinx-gallery reads them and writes the pages of auto_examples/
exclude_patterns = ["_build", "field", "examples", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "sg_execution_times.rst"]

# Markdown pages (moved from the README): GitHub-style anchors for their headings
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections state the types
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "plot_gallery": "False",  # shown, not run; -D plot_gallery=1 runs them
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    # jointinv draws its figures without pyplot: docs/_ext/figure_scraper.py finds them
    "image_scrapers": ("matplotlib", "figure_scraper.figure_scraper"),
}

html_theme = "alabaster"
html_title = f"jointinv {release}"
html_static_path: list[str] = []
html_theme_options = {"description": "Joint inversion of ERT, traveltimes and gravity",
                      "fixed_sidebar": True}
