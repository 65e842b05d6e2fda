"""
Quick start: ERT, refraction and gravity in one model
=====================================================

The bundled synthetic profile (``data/samples/profile2d``, made by
``scripts/make_samples.py``): a conductive, slow and light block inside a two-layer
earth, measured by ERT (dipole-dipole, 32 electrodes), refraction (shots along the
same line) and gravity (32 stations). ``configs/quickstart.yaml`` inverts all three
for resistivity, velocity and density contrast on one 1 m mesh, coupled by
cross-gradients, and computes the posterior diagnostics. About two minutes on
2 cores. The command-line equivalent is ``jointinv run configs/quickstart.yaml``
followed by ``jointinv show results/quickstart.h5 --plot plots/``.
"""

# %%
# Run the inversion
# -----------------
# ``jointinv.run`` takes a config file (or a mapping or a validated config), writes
# one HDF5 result and returns the models, the final χ² of every modality and the
# posterior diagnostics.
import sys
from pathlib import Path

import jointinv
from jointinv.fit_plots import ert_fit_figure, traveltime_fit_figure
from jointinv.plotting import convergence_figure, section_figure
from jointinv.results import read_result

# the script's own path, also when sphinx-gallery runs it (it sets sys.argv[0])
REPO = Path(sys.argv[0]).resolve().parents[2]
OUT = REPO / "results" / "gallery" / "quickstart.h5"

result = jointinv.run(REPO / "configs" / "quickstart.yaml", output=OUT, force=True)
for name, chi2 in result.chi2.items():
    print(f"{name}: chi2 = {chi2:.2f}")

# %%
# The model sections
# ------------------
# The saved result holds every cell of the mesh (``read_result``). Cells the data
# do not resolve (posterior std above 0.8 × the prior's) are veiled grey.
saved = read_result(OUT)
resistivity = section_figure(saved, "resistivity")
velocity = section_figure(saved, "velocity")
density = section_figure(saved, "density_contrast")

# %%
# Data fit and convergence
# ------------------------
# Observed against predicted data: the ERT pseudosections and the first arrivals
# of every shot; then χ² of every modality, β and Φ against the iteration.
ert_fit = ert_fit_figure("ert", saved.data["ert"])
traveltime_fit = traveltime_fit_figure("traveltime", saved.data["traveltime"])
convergence = convergence_figure(saved)
