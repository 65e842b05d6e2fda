"""
Field example: ERT and refraction over topography (Mulda)
=========================================================

``configs/field/mulda.yaml`` inverts a real hillslope survey: 784 ERT data
(elevations in ``z``, geometric factors from the file) and 941 refraction picks
(elevations in ``y``, no errors in the file), coupled by a cross-gradient, over
9 m of topography. The mesh follows the ground surface through every electrode
and geophone (``mesh.topography``). The other field examples,
``koenigsee.yaml`` (refraction) and ``luneplate.yaml`` (ERT on a saline marsh),
run the same way; see :doc:`/field-examples`.

The data are read in place from ``../shared/realdata`` beside the repository
(they are not part of it). About four minutes on 2 cores.
"""

# %%
# Run
# ---
import sys
from pathlib import Path

import jointinv
from jointinv.plotting import convergence_figure, section_figure
from jointinv.results import read_result

# the script's own path, also when sphinx-gallery runs it (it sets sys.argv[0])
REPO = Path(sys.argv[0]).resolve().parents[2]
CONFIG = REPO / "configs" / "field" / "mulda.yaml"
OUT = REPO / "results" / "gallery" / "mulda.h5"

result = jointinv.run(CONFIG, output=OUT, force=True, diagnostics=False)
print({name: round(chi2, 2) for name, chi2 in result.chi2.items()})

# %%
# Sections over the topography
# ----------------------------
# Cells above the ground are inactive (blank); z is the elevation.
saved = read_result(OUT)
resistivity = section_figure(saved, "resistivity")
velocity = section_figure(saved, "velocity")
convergence = convergence_figure(saved)
