"""Survey data containers, free of engine types.

Coordinates: ``x`` along the profile (m) and elevation ``z`` (m, up), as given
in the data file (absolute elevations such as 540 m are kept, not shifted).
Sensor indices are 0-based here (files are 1-based). ``line_numbers`` (1-based
line of each datum in its file, when read from a file) let later checks name
the line of a bad value.
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
        Electrode x, elevation (m).
    abmn : (n_data, 4) int array
        Current electrodes A, B and potential electrodes M, N (0-based);
        -1 for a remote (pole) electrode.
    apparent_resistivity : (n_data,) array
        ρa (Ω·m) = k · r; from the file's ``rhoa`` column, else computed.
    geometric_factor : (n_data,) array
        k (m), such that ρa = k · r with r = u / i (Ω).
    geometric_factor_source : {"file", "analytic", "numerical"}
        Where k comes from: the file's ``k`` column, the flat half-space
        formula, or a pyGIMLi simulation over the electrodes' topography.
    err : (n_data,) array or None
        The file's ``err`` column as written, if present (unit: ``err_unit``).
    err_unit : {"percent"} or None
        ``"percent"`` when the token line declares it (``err/%``); None when
        the token is a bare ``err`` (the config's ``error.file_unit`` decides).
    source : str
        Path the data came from.
    line_numbers : (n_data,) int array or None
        1-based line of each datum in the file.
    """

    electrodes: np.ndarray
    abmn: np.ndarray
    apparent_resistivity: np.ndarray
    geometric_factor: np.ndarray
    geometric_factor_source: str
    err: np.ndarray | None = None
    err_unit: str | None = None
    source: str = ""
    line_numbers: np.ndarray | None = None

    @property
    def n_data(self) -> int:
        return len(self.apparent_resistivity)

    def file_indices(self) -> dict[str, np.ndarray]:
        """Electrode indices ``a``, ``b``, ``m``, ``n`` as the file numbers them:
        1-based rows of ``electrodes``, 0 for a remote electrode."""
        return {key: self.abmn[:, i] + 1 for i, key in enumerate("abmn")}


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
        The file's ``err`` column (s), if present (not checked: zero or
        negative values are rejected only when the error model uses them).
    source : str
    line_numbers : (n_data,) int array or None
        1-based line of each datum in the file.
    n_zero_offset : int
        Zero-offset picks (shot = geophone, t = 0) of the file, dropped by the reader.
    """

    sensors: np.ndarray
    shot: np.ndarray
    geophone: np.ndarray
    traveltime_s: np.ndarray
    error_s: np.ndarray | None
    source: str = ""
    line_numbers: np.ndarray | None = None
    n_zero_offset: int = 0

    @property
    def n_data(self) -> int:
        return len(self.traveltime_s)

    def file_indices(self) -> dict[str, np.ndarray]:
        """``shot`` and ``geophone`` as the file numbers them: 1-based rows of ``sensors``."""
        return {"shot": self.shot + 1, "geophone": self.geophone + 1}


@dataclass
class ProfileLine:
    """A straight profile in map coordinates, onto which 3D stations are projected.

    Attributes
    ----------
    start, end : (float, float)
        Map coordinates (easting, northing or x, y; m) of the profile's ends.
        ``x`` along the profile is the distance from ``start`` towards ``end``.
    max_offset : float or None
        Stations farther than this (m) from the line are dropped.
    """

    start: tuple[float, float]
    end: tuple[float, float]
    max_offset: float | None = None


@dataclass
class GravityData:
    """Vertical gravity anomaly along the profile.

    Attributes
    ----------
    stations : (n_data, 2) array
        Station x along the profile, elevation (m).
    gz_mgal : (n_data,) array
        Vertical component of the gravity anomaly (mGal), positive for excess
        mass (the UBC-GIF convention, "gz positive down", too).
    error_mgal : (n_data,) array or None
        The file's ``err`` (or UBC ``std``) column (mGal), if present (not
        checked: zero values are rejected only when the error model uses them).
    source : str
    line_numbers : (n_data,) int array or None
        1-based line of each station in the file.
    map_xy : (n_data, 2) array or None
        Map coordinates (m) of stations given in 3D, before projection.
    offset_m : (n_data,) array or None
        Distance (m) of each projected station from the profile line.
    n_dropped : int
        Stations of the file dropped for lying beyond the profile's ``max_offset``.
    loop : (n_data,) str array or None
        The survey loop (base-station tie) of each reading, from a ``loop`` column.
    """

    stations: np.ndarray
    gz_mgal: np.ndarray
    error_mgal: np.ndarray | None
    source: str = ""
    line_numbers: np.ndarray | None = None
    map_xy: np.ndarray | None = None
    offset_m: np.ndarray | None = None
    n_dropped: int = 0
    loop: np.ndarray | None = None

    @property
    def n_data(self) -> int:
        return len(self.gz_mgal)

    def file_indices(self) -> dict[str, np.ndarray]:
        """None: one datum per station (``stations`` are in data order)."""
        return {}
