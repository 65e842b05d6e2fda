"""The synthetic 2D profile used by the bundled sample and the tests.

A conductive, low-velocity, low-density block inside a two-layer background.
The geometry and values are stored with the sample (``true_model.json``) so
that any mesh can be compared with the truth.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class BlockInLayers:
    """A rectangular block in a two-layer background (lengths in m, z up).

    Density contrast is relative to the layered background, which has none.
    """

    layer_depth: float = 4.0
    resistivity_top: float = 100.0  # ohm*m
    resistivity_bottom: float = 500.0
    velocity_top: float = 700.0  # m/s
    velocity_bottom: float = 2000.0
    block_x: tuple[float, float] = (22.0, 36.0)
    block_z: tuple[float, float] = (-9.0, -3.0)
    block_resistivity: float = 15.0
    block_velocity: float = 450.0
    block_density_contrast: float = -0.3  # g/cm^3

    def in_block(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        (x0, x1), (z0, z1) = self.block_x, self.block_z
        return (x > x0) & (x < x1) & (z > z0) & (z < z1)

    def evaluate(self, x: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
        """Resistivity (ohm*m), velocity (m/s) and density contrast (g/cm^3) at points."""
        top = z > -self.layer_depth
        block = self.in_block(x, z)
        rho = np.where(top, self.resistivity_top, self.resistivity_bottom)
        vel = np.where(top, self.velocity_top, self.velocity_bottom)
        return {
            "resistivity": np.where(block, self.block_resistivity, rho),
            "velocity": np.where(block, self.block_velocity, vel),
            "density_contrast": np.where(block, self.block_density_contrast, 0.0),
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"kind": "block_in_layers", **asdict(self)}, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> BlockInLayers:
        raw = json.loads(Path(path).read_text())
        raw.pop("kind")
        raw["block_x"] = tuple(raw["block_x"])
        raw["block_z"] = tuple(raw["block_z"])
        return cls(**raw)


def cell_average(model: BlockInLayers, nodes_x: np.ndarray, nodes_z: np.ndarray, sub: int = 4):
    """Properties averaged over each cell (``sub × sub`` sub-samples; log-average for
    resistivity and velocity), cells x-fastest."""
    fx = (np.arange(sub) + 0.5) / sub
    xs = (nodes_x[:-1, None] + np.diff(nodes_x)[:, None] * fx).ravel()
    zs = (nodes_z[:-1, None] + np.diff(nodes_z)[:, None] * fx).ravel()
    xx, zz = np.meshgrid(xs, zs)
    values = model.evaluate(xx, zz)
    nx, nz = len(nodes_x) - 1, len(nodes_z) - 1
    out = {}
    for name, v in values.items():
        logv = name != "density_contrast"
        a = np.log(v) if logv else v
        a = a.reshape(nz, sub, nx, sub).mean(axis=(1, 3)).ravel()
        out[name] = np.exp(a) if logv else a
    return out


@dataclass(frozen=True)
class PorosityBlocks:
    """Porosity (fraction) of a background with two blocks; the sample of a shared
    porosity driving ERT (Archie), traveltime (Wyllie) and gravity (density mixing)."""

    background: float = 0.30
    block_a_x: tuple[float, float] = (12.0, 24.0)
    block_a_z: tuple[float, float] = (-8.0, -3.0)
    block_a: float = 0.45
    block_b_x: tuple[float, float] = (38.0, 50.0)
    block_b_z: tuple[float, float] = (-10.0, -4.0)
    block_b: float = 0.12
    fluid_resistivity: float = 20.0  # ohm*m, Archie a = 1, m = 2, S = 1
    v_matrix: float = 5500.0  # m/s, Wyllie
    v_fluid: float = 1500.0
    rho_matrix: float = 2.65  # g/cm^3, density mixing
    rho_fluid: float = 1.0

    @property
    def reference_density(self) -> float:
        """Bulk density of the background (g/cm³): density contrasts are relative to it."""
        return self.background * self.rho_fluid + (1 - self.background) * self.rho_matrix

    def porosity(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        phi = np.full(np.broadcast(x, z).shape, self.background)
        for (x0, x1), (z0, z1), value in (
            (self.block_a_x, self.block_a_z, self.block_a),
            (self.block_b_x, self.block_b_z, self.block_b),
        ):
            phi = np.where((x > x0) & (x < x1) & (z > z0) & (z < z1), value, phi)
        return phi

    def relations(self) -> dict:
        from .petrophysics import Archie, DensityMixing, Wyllie

        return {
            "resistivity": Archie(fluid_resistivity=self.fluid_resistivity),
            "velocity": Wyllie(v_matrix=self.v_matrix, v_fluid=self.v_fluid),
            "density_contrast": DensityMixing(
                rho_matrix=self.rho_matrix,
                rho_fluid=self.rho_fluid,
                reference=self.reference_density,
            ),
        }

    def cell_average(self, nodes_x: np.ndarray, nodes_z: np.ndarray, sub: int = 4) -> dict:
        """Porosity averaged over each cell and the properties it implies, cells x-fastest."""
        fx = (np.arange(sub) + 0.5) / sub
        xs = (nodes_x[:-1, None] + np.diff(nodes_x)[:, None] * fx).ravel()
        zs = (nodes_z[:-1, None] + np.diff(nodes_z)[:, None] * fx).ravel()
        xx, zz = np.meshgrid(xs, zs)
        nx, nz = len(nodes_x) - 1, len(nodes_z) - 1
        phi = self.porosity(xx, zz).reshape(nz, sub, nx, sub).mean(axis=(1, 3)).ravel()
        out = {"porosity": phi}
        out.update({name: rel.value(phi) for name, rel in self.relations().items()})
        return out

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"kind": "porosity_blocks", **asdict(self)}, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> PorosityBlocks:
        raw = json.loads(Path(path).read_text())
        raw.pop("kind")
        for key in ("block_a_x", "block_a_z", "block_b_x", "block_b_z"):
            raw[key] = tuple(raw[key])
        return cls(**raw)
