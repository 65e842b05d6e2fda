"""Survey data containers, free of engine types.

Coordinates follow the model mesh: ``x`` along the profile (m), ``z`` up (m),
surface at 0. Sensor indices are 0-based here (files are 1-based).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ErtData:
    """Four-electrode resistivity data.

    Attributes
    ----------
    electrodes : (n_electrodes, 2) array
        Electrode x, z (m).
    abmn : (n_data, 4) int array
        Current electrodes A, B and potential electrodes M, N (0-based);
        -1 for a remote (pole) electrode.
    apparent_resistivity : (n_data,) array
        ρa (Ω·m).
    relative_error : (n_data,) array or None
        The file's ``err`` column as a fraction of ρa, if present.
    source : str
        Path the data came from.
    """

    electrodes: np.ndarray
    abmn: np.ndarray
    apparent_resistivity: np.ndarray
    relative_error: np.ndarray | None
    source: str = ""

    @property
    def n_data(self) -> int:
        return len(self.apparent_resistivity)


@dataclass
class TraveltimeData:
    """First-arrival traveltimes.

    Attributes
    ----------
    sensors : (n_sensors, 2) array
        Shot and geophone positions x, z (m).
    shot, geophone : (n_data,) int arrays
        0-based sensor indices.
    traveltime_s : (n_data,) array
        First-arrival time (s).
    error_s : (n_data,) array or None
        The file's ``err`` column (s), if present.
    source : str
    """

    sensors: np.ndarray
    shot: np.ndarray
    geophone: np.ndarray
    traveltime_s: np.ndarray
    error_s: np.ndarray | None
    source: str = ""

    @property
    def n_data(self) -> int:
        return len(self.traveltime_s)


@dataclass
class GravityData:
    """Vertical gravity anomaly along the profile.

    Attributes
    ----------
    stations : (n_data, 2) array
        Station x, z (m).
    gz_mgal : (n_data,) array
        Vertical component of the gravity anomaly (mGal), positive for excess mass.
    error_mgal : (n_data,) array or None
        The file's ``err`` column (mGal), if present.
    source : str
    """

    stations: np.ndarray
    gz_mgal: np.ndarray
    error_mgal: np.ndarray | None
    source: str = ""

    @property
    def n_data(self) -> int:
        return len(self.gz_mgal)
