"""jointinv: joint inversion of ERT, seismic traveltime and gravity on a 2D profile."""

from ._version import __version__

__all__ = ["__version__"]
