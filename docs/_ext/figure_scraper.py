"""sphinx-gallery image scraper for figures drawn without pyplot.

jointinv's plotting functions return :class:`matplotlib.figure.Figure` objects on
their own canvas (pyplot never sees them, so notebooks keep their backend), and
sphinx-gallery's matplotlib scraper only finds pyplot's figures. This one takes
every Figure the example holds in a global variable, once, in the order the
variables were bound.
"""

from __future__ import annotations

from typing import Any


def figure_scraper(block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any],
                   **kwargs: Any) -> str:
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    shown = block_vars.setdefault("jointinv_shown_figures", set())
    figures = [v for v in block_vars["example_globals"].values()
               if isinstance(v, Figure) and id(v) not in shown]
    paths = []
    for figure, path in zip(figures, block_vars["image_path_iterator"]):
        figure.savefig(path, dpi=110)
        shown.add(id(figure))
        paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])
