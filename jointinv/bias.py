"""Bias parameters: model augmentation for data that disagree.

A bias block adds ``D·b`` to one modality's prediction, where ``b`` are extra
entries appended to the joint model vector (after every property block) and
``D`` is a design matrix fixed by the bias type:

============  ===============  ===================================  ==================
modality      type             column(s) of D                       reported in
============  ===============  ===================================  ==================
gravity       ``offset``       ones                                 mGal
gravity       ``trend``        x − mean(x) of the stations (m)      mGal per m
gravity       ``loop_offset``  indicator of each loop's readings    mGal
                               but the first loop's
traveltime    ``static``       indicator of each shot's data        ms (data are in s)
ert           ``shift``        ones (data are ln ρa)                ln(ohm*m)
ert           ``electrode``    indicator of each electrode's data   ln(ohm*m)
                               as potential electrode M or N
============  ===============  ===================================  ==================

``loop_offset`` needs a ``loop`` column in the gravity file (the survey loop,
i.e. base-station tie, of each reading). The first loop in the file is the
reference: each other loop gets the offset of its readings relative to it. A
common offset of every loop is not among them: on a 2D profile it is the field
of a laterally uniform density layer, so the data cannot tell it from the model
(declare ``offset`` for it; its σ shows how little the data say).

``electrode`` models a bad contact at a potential electrode. The voltmeter has a
finite input impedance Z and the contact resistances R_M, R_N of the potential
electrodes lie in series with it, so it reads the fraction Z / (Z + R_M + R_N)
of the potential difference: ln ρa is shifted by −ln(1 + (R_M + R_N)/Z), i.e.
by b_M + b_N with b_e = −ln(1 + R_e/Z) ≤ 0 to first order in R/Z (exactly, when
one electrode of the datum is bad). A bad contact at a current electrode A or B
lowers the current, which the instrument measures, so it does not bias ρa (it
raises the noise): those data get no column. One parameter per electrode used
as M or N; the common part of all of them is a uniform factor on ρa, which a
uniform change of resistivity also explains, so the σ of each includes that
trade-off. A mislocated electrode, by contrast, changes the geometric factor by
a factor that depends on the configuration, which this bias does not model.

The bias parameters are not smoothed or damped by the regularization (β does
not act on them); a very weak Gaussian prior, ``½ Σ (b / σ_b)²`` with
``σ_b = PRIOR_STD_FACTOR × median data σ`` of the modality, keeps the normal
equations definite when a bias and the model explain the same data pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .errors import DataError
from .objective import DataMisfit, Objective

#: σ_b of the weak Gaussian prior on a bias, in units of the modality's median data σ
PRIOR_STD_FACTOR = 1.0e3

#: bias types allowed for each modality kind
BIAS_TYPES = {
    "gravity": ("offset", "trend", "loop_offset"),
    "traveltime": ("static",),
    "ert": ("shift", "electrode"),
}

_UNITS = {
    "offset": ("mGal", 1.0),
    "trend": ("mGal/m", 1.0),
    "loop_offset": ("mGal", 1.0),
    "static": ("ms", 1.0e3),
    "shift": ("ln(ohm*m)", 1.0),
    "electrode": ("ln(ohm*m)", 1.0),
}


@dataclass
class BiasBlock:
    """Bias parameters of one type for one modality.

    Attributes
    ----------
    modality : str
        The modality whose prediction the bias enters.
    kind : str
        Bias type (``offset``, ``trend``, ``loop_offset``, ``static``, ``shift``,
        ``electrode``).
    design : (n_data, n_bias) array
        D, from the parameters (data units) to the data.
    labels : list of str
        One label per parameter (e.g. ``shot 7 at x = 24.0 m``).
    units : str
        Units of the reported values.
    scale : float
        Reported value = scale × parameter (1e3 for s → ms).
    start : int
        Index of the first parameter in the augmented model vector.
    """

    modality: str
    kind: str
    design: np.ndarray
    labels: list[str]
    units: str
    scale: float = 1.0
    start: int = 0

    @property
    def size(self) -> int:
        return self.design.shape[1]

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)


def design_matrix(bias_type: str, survey: object, n_data: int) -> tuple[np.ndarray, list[str]]:
    """D and labels of one bias type for a survey (see the module table)."""
    if bias_type in ("offset", "shift"):
        return np.ones((n_data, 1)), [bias_type]
    if bias_type == "trend":
        x = np.asarray(survey.stations[:, 0], dtype=float)
        return (x - x.mean())[:, None], ["trend"]
    if bias_type == "loop_offset":
        return _loop_design(survey)
    if bias_type == "static":
        shots = np.asarray(survey.shot)
        unique = np.unique(shots)
        design = (shots[:, None] == unique[None, :]).astype(float)
        return design, [_shot_label(survey, s) for s in unique]
    if bias_type == "electrode":
        return _electrode_design(survey)
    raise ValueError(f"unknown bias type {bias_type!r}")


def _shot_label(survey: object, shot: int) -> str:
    """``shot 7 at x = 24.0 m``: the sensor number as the data file counts it (from 1;
    the survey holds 0-based indices) and the shot's position along the profile."""
    sensors = getattr(survey, "sensors", None)
    if sensors is None:
        return f"shot {shot + 1}"
    return f"shot {shot + 1} at x = {float(sensors[shot][0]):.1f} m"


def _electrode_design(survey: object) -> tuple[np.ndarray, list[str]]:
    """One column per electrode used as a potential electrode (M or N), in electrode
    order: 1 in the rows of the data that use it so (see the module docstring)."""
    mn = np.asarray(survey.abmn)[:, 2:]
    used = np.unique(mn[mn >= 0])
    design = (mn[:, :, None] == used[None, None, :]).sum(axis=1).astype(float)
    x = np.asarray(survey.electrodes)[:, 0]
    labels = [f"electrode {e + 1} at x = {float(x[e]):.1f} m" for e in used]
    return design, labels


def _loop_design(survey: object) -> tuple[np.ndarray, list[str]]:
    """Indicator columns of every loop but the first (the reference), in file order."""
    loops = getattr(survey, "loop", None)
    source = getattr(survey, "source", "")
    if loops is None:
        raise DataError(source, None, "the loop_offset bias needs a 'loop' column in this file")
    _, first = np.unique(loops, return_index=True)
    order = [str(loops[i]) for i in sorted(first)]
    if len(order) < 2:
        raise DataError(
            source, None, f"the loop_offset bias needs two or more loops; all are '{order[0]}'"
        )
    reference, others = order[0], order[1:]
    design = (np.asarray(loops)[:, None] == np.asarray(others)[None, :]).astype(float)
    return design, [f"loop {name} − {reference}" for name in others]


def bias_block(modality: str, bias_type: str, survey: object, n_data: int) -> BiasBlock:
    """A :class:`BiasBlock` for a modality's survey (start is set by :func:`layout`)."""
    design, labels = design_matrix(bias_type, survey, n_data)
    units, scale = _UNITS[bias_type]
    return BiasBlock(modality, bias_type, design, labels, units, scale)


def declared_blocks(biases: dict[str, list[str]], datasets: dict) -> list[BiasBlock]:
    """The blocks of a config's ``conflict.biases`` for its loaded datasets.

    Raises
    ------
    DataError
        A bias the data file cannot carry (``loop_offset`` without loops).
    """
    return [
        bias_block(name, kind, datasets[name].survey, len(datasets[name].observed))
        for name, kinds in biases.items()
        for kind in kinds
    ]


def layout(blocks: list[BiasBlock], n_model: int) -> int:
    """Place the blocks after the ``n_model`` model parameters; return the total length."""
    start = n_model
    for b in blocks:
        b.start = start
        start += b.size
    return start


class AugmentedOperator:
    """``G(m[:n_model]) + Σ D_j b_j``: a modality's operator on the augmented vector.

    Parameters
    ----------
    operator : Operator
        The modality's operator on the joint model vector (length ``n_model``).
    n_params : int
        Length of the augmented vector.
    blocks : list of BiasBlock
        The bias blocks of this modality (may be empty: the operator then only
        ignores the bias entries).
    """

    def __init__(self, operator: object, n_params: int, blocks: list[BiasBlock]) -> None:
        self.operator = operator
        self.n_model = operator.n_params
        self.n_params = n_params
        self.blocks = blocks

    @property
    def n_data(self) -> int:
        return self.operator.n_data

    def forward(self, m: np.ndarray) -> np.ndarray:
        d = self.operator.forward(m[: self.n_model])
        for b in self.blocks:
            d = d + b.design @ m[b.slice]
        return d

    def jvec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        out = self.operator.jvec(m[: self.n_model], v[: self.n_model])
        for b in self.blocks:
            out = out + b.design @ v[b.slice]
        return out

    def jtvec(self, m: np.ndarray, w: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n_params)
        out[: self.n_model] = self.operator.jtvec(m[: self.n_model], w)
        for b in self.blocks:
            out[b.slice] += b.design.T @ w
        return out

    @property
    def has_jacobian(self) -> bool:
        return getattr(self.operator, "has_jacobian", False)

    def jacobian(self, m: np.ndarray) -> np.ndarray | sp.csr_matrix:
        j = self.operator.jacobian(m[: self.n_model])
        extra = np.zeros((self.n_data, self.n_params - self.n_model))
        for b in self.blocks:
            extra[:, b.start - self.n_model : b.start - self.n_model + b.size] = b.design
        if sp.issparse(j):
            return sp.csr_matrix(sp.hstack([j, sp.csr_matrix(extra)]))
        return np.hstack([np.asarray(j), extra])


class PaddedRegularization:
    """The model regularization on the augmented vector (zero on the biases)."""

    def __init__(self, regularization: object, n_params: int) -> None:
        self.inner = regularization
        self.name = regularization.name
        self.n_model = len(regularization.reference)
        self.n_params = n_params

    def _pad(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n_params)
        out[: self.n_model] = x
        return out

    def value(self, m: np.ndarray) -> float:
        return self.inner.value(m[: self.n_model])

    def gradient(self, m: np.ndarray) -> np.ndarray:
        return self._pad(self.inner.gradient(m[: self.n_model]))

    def hessian_vec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self._pad(self.inner.hessian_vec(m[: self.n_model], v[: self.n_model]))

    def hessian_diagonal(self) -> np.ndarray:
        return self._pad(self.inner.hessian_diagonal())


class BiasPrior:
    """½ Σ_j (b_j / σ_j)²: the weak Gaussian prior on the bias parameters."""

    name = "bias_prior"

    def __init__(self, blocks: list[BiasBlock], prior_std: dict[str, float], n_params: int):
        self.precision = np.zeros(n_params)
        for b in blocks:
            self.precision[b.slice] = 1.0 / prior_std[b.modality] ** 2

    def value(self, m: np.ndarray) -> float:
        return 0.5 * float(self.precision @ m**2)

    def gradient(self, m: np.ndarray) -> np.ndarray:
        return self.precision * m

    def hessian_vec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.precision * v

    def hessian_diagonal(self, m: np.ndarray) -> np.ndarray:
        return self.precision.copy()


def augment(objective: Objective, blocks: list[BiasBlock], n_model: int) -> Objective:
    """The objective with bias parameters appended to the model vector.

    Every misfit gets an :class:`AugmentedOperator` (with its modality's
    blocks, possibly none), the regularization is padded with zeros and a
    :class:`BiasPrior` joins the couplings. ``blocks`` are placed by
    :func:`layout` if that was not done. The returned objective's misfits are
    new objects with the same data.
    """
    n_params = layout(blocks, n_model)
    misfits = []
    prior_std = {}
    for t in objective.misfits:
        own = [b for b in blocks if b.modality == t.name]
        op = AugmentedOperator(t.operator, n_params, own)
        new = DataMisfit(t.name, op, t.observed, t.std, chi2_target=t.chi2_target)
        misfits.append(new)
        prior_std[t.name] = PRIOR_STD_FACTOR * float(np.median(t.std))
    for b in blocks:  # a bias of a modality left out of this objective stays at 0
        prior_std.setdefault(b.modality, 1.0)
    reg = PaddedRegularization(objective.regularization, n_params)
    couplings = [*objective.couplings, BiasPrior(blocks, prior_std, n_params)]
    return Objective(misfits, reg, couplings, beta=objective.beta)
