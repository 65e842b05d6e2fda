"""Config hashes, per-iteration checkpoints and the "is this result complete?" test.

A run writes ``<output stem>.checkpoint.h5`` next to its result after every
Gauss-Newton iteration (atomically: temporary file, then rename). The file holds
everything :func:`jointinv.run` needs to continue exactly where it stopped:

    /checkpoint   attributes: iteration, beta0, config_hash, jointinv_version,
                  format_version, records (the iteration records so far, JSON)
    /checkpoint/model   the joint model vector after that iteration

The β schedule is a function of β0 and the iteration number, the line search
and CG start from scratch in every iteration, and the engines keep no state that
changes their answers, so β0, the iteration number and the model are enough to
continue: the resumed run's final model is the uninterrupted run's.

The config hash identifies what a run computes: the validated config as
canonical JSON, with each data file replaced by the SHA-256 of its content.
Settings that do not change the numbers (``output``, the ERT thread count) are
left out, so a batch may cap threads or move outputs and still recognise a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._version import FORMAT_VERSION, __version__
from .config import LoadedConfig
from .errors import UserInputError
from .inversion import IterationRecord
from .resultfile import open_checkpoint, open_result
from .results import write_atomic

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "1.0"


# --- config hash -------------------------------------------------------------
def file_sha256(path: Path) -> str:
    """SHA-256 of a file's content (hex); ``"missing"`` when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return "missing"
    return digest.hexdigest()


def config_hash(loaded: LoadedConfig, *, only: list[str] | None = None) -> str:
    """SHA-256 (hex) of what a run computes: effective config and data contents.

    Parameters
    ----------
    loaded : LoadedConfig
    only : list of str, optional
        The modalities a run is restricted to (see :func:`jointinv.run`).
    """
    effective = loaded.config.model_dump(mode="json", exclude={"output"})
    for modality in effective["modalities"].values():
        modality["data"] = "sha256:" + file_sha256(loaded.resolve(modality["data"]))
        modality.get("options", {}).pop("threads", None)  # no effect on the numbers
    if only is not None:
        effective["only"] = sorted(only)
    text = json.dumps(effective, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


# --- checkpoints -------------------------------------------------------------
def checkpoint_path(output: Path) -> Path:
    """``results/run.h5`` -> ``results/run.checkpoint.h5``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.checkpoint.h5")


@dataclass
class Checkpoint:
    """The state of a run after one Gauss-Newton iteration.

    Attributes
    ----------
    model : ndarray
        Joint model vector (inversion parameters) after ``iteration``.
    iteration : int
    beta0 : float
        β of the first iteration; the schedule follows from it.
    records : list of IterationRecord
        Records of iterations 0 … ``iteration``.
    config_hash : str
    """

    model: np.ndarray
    iteration: int
    beta0: float
    records: list[IterationRecord]
    config_hash: str


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write a checkpoint atomically (a reader never sees half a file)."""
    records = json.dumps([dataclasses.asdict(r) for r in checkpoint.records])

    def fill(f: h5py.File) -> None:
        g = f.create_group("checkpoint")
        g.attrs["checkpoint_format"] = CHECKPOINT_FORMAT
        g.attrs["format_version"] = FORMAT_VERSION
        g.attrs["jointinv_version"] = __version__
        g.attrs["iteration"] = checkpoint.iteration
        g.attrs["beta0"] = checkpoint.beta0
        g.attrs["config_hash"] = checkpoint.config_hash
        g.attrs["records"] = records
        g["model"] = np.asarray(checkpoint.model, dtype=float)

    write_atomic(path, fill)


def read_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by :func:`write_checkpoint`.

    Raises
    ------
    UserInputError
        One line naming the file: not a checkpoint, malformed, or a file that would
        make jointinv read other files (see :func:`jointinv.resultfile.open_checkpoint`).
    """
    with open_checkpoint(path) as f:
        g = f["checkpoint"]
        records = [IterationRecord(**r) for r in json.loads(g.attrs["records"])]
        return Checkpoint(
            model=g["model"][()],
            iteration=int(g.attrs["iteration"]),
            beta0=float(g.attrs["beta0"]),
            records=records,
            config_hash=str(g.attrs["config_hash"]),
        )


def checkpoint_hash(path: Path) -> str | None:
    """The config hash stored in a checkpoint, or None if there is no readable one
    (no file, or one :func:`~jointinv.resultfile.open_checkpoint` refuses)."""
    try:
        with open_checkpoint(path) as f:
            return str(f["checkpoint"].attrs["config_hash"])
    except UserInputError:
        return None


def remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files left by an atomic write of ``path`` that was killed."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        log.debug("removing %s, left by an interrupted write", tmp)
        tmp.unlink(missing_ok=True)


# --- complete results ----------------------------------------------------------
def result_hash(path: Path) -> str | None:
    """The config hash of a complete result file, or None.

    Complete means: :func:`~jointinv.resultfile.open_result` accepts the file and
    ``/meta`` has ``success`` and ``stop_reason`` (results are written atomically,
    so a file that exists is whole unless something else wrote it).
    """
    try:
        with open_result(path) as f:
            meta = f["meta"].attrs
            if "success" not in meta or "stop_reason" not in meta:
                return None
            return str(meta["config_hash"]) if "config_hash" in meta else None
    except UserInputError:
        return None


def read_result_summary(path: Path) -> dict[str, Any]:
    """χ² per modality, iterations, stop reason and success of a result file."""
    with open_result(path) as f:
        meta = f["meta"].attrs
        chi2 = {k: float(g.attrs["chi2"]) for k, g in f["data"].items()} if "data" in f else {}
        return {
            "chi2": chi2,
            "iterations": int(meta.get("iterations", -1)),
            "stop_reason": str(meta.get("stop_reason", "")),
            "success": bool(meta.get("success", False)),
        }


# --- what a run uses ---------------------------------------------------------
class Checkpointer:
    """Writes a run's checkpoints and, when resuming, hands back the last one.

    Temporary files left by writes of the result or the checkpoint that were
    killed are removed.

    Parameters
    ----------
    output : Path
        The run's result file; the checkpoint is :func:`checkpoint_path` of it.
    config_hash : str
        Hash of the run's config (:func:`config_hash`).
    resume : bool
        Continue from the checkpoint at ``path``. It must have been made from
        the same config; without a checkpoint the run starts from the beginning.

    Raises
    ------
    UserInputError
        When resuming from a checkpoint made from a different config or data.
    """

    def __init__(self, output: Path, config_hash: str, *, resume: bool = False) -> None:
        self.path = checkpoint_path(output)
        self.config_hash = config_hash
        self.resumed: Checkpoint | None = None
        #: iteration of the checkpoint of this run on disk (None: none yet)
        self.iteration: int | None = None
        remove_stale_temporaries(Path(output))
        remove_stale_temporaries(self.path)
        exists = self.path.is_file()
        if resume and exists:
            resumed = read_checkpoint(self.path)
            if resumed.config_hash != config_hash:
                raise UserInputError(
                    f"{self.path}: checkpoint was made from a different config or data "
                    "(config hash differs); run without --resume to start again"
                )
            self.resumed = resumed
            self.iteration = self.resumed.iteration
            log.info("resuming after iteration %d from %s", self.resumed.iteration, self.path)
        elif resume:
            log.warning("%s: no checkpoint; starting from the beginning", self.path)
        elif exists:
            log.info(
                "%s: replacing the checkpoint of an earlier run (--resume continues it)", self.path
            )

    def save(self, model: np.ndarray, records: list[IterationRecord], beta0: float) -> None:
        """Write the state after the last of ``records``."""
        write_checkpoint(
            self.path,
            Checkpoint(
                model=model,
                iteration=records[-1].iteration,
                beta0=beta0,
                records=records,
                config_hash=self.config_hash,
            ),
        )
        self.iteration = records[-1].iteration

    def remove(self) -> None:
        """Delete the checkpoint (the final result has been written)."""
        self.path.unlink(missing_ok=True)
        self.iteration = None
