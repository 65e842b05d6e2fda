"""
Petrophysical coupling: one porosity for three methods
======================================================

``configs/petro_porosity.yaml`` inverts a single property, porosity, and derives
resistivity (Archie), velocity (Wyllie) and density contrast (density mixing)
from it: each method senses its derived property, and the chain rule carries
its sensitivity back to porosity (hard coupling). The data are the synthetic
``data/samples/porosity2d`` (two blocks of other porosity in a background of
0.30). About two minutes on 2 cores.

A soft version keeps separate properties and adds a ``petrophysical`` coupling
term that pulls them towards the relation; see :doc:`/choosing`.
"""

# %%
# Run
# ---
import sys
from pathlib import Path

import jointinv
from jointinv.plotting import section_figure
from jointinv.results import read_result

# the script's own path, also when sphinx-gallery runs it (it sets sys.argv[0])
REPO = Path(sys.argv[0]).resolve().parents[2]
OUT = REPO / "results" / "gallery" / "petro_porosity.h5"

result = jointinv.run(REPO / "configs" / "petro_porosity.yaml", output=OUT, force=True)
print({name: round(chi2, 2) for name, chi2 in result.chi2.items()})

# %%
# The shared porosity and one derived property
# --------------------------------------------
# ``/models`` holds the inverted porosity and every derived property (attribute
# ``transform: derived``, with ``derived_from`` and ``relation``).
saved = read_result(OUT)
porosity = section_figure(saved, "porosity")
resistivity = section_figure(saved, "resistivity")
