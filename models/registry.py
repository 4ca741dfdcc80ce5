"""The model manifest (``models/manifest.toml``) and artifact verification.

Device side: imports only the standard library (no TensorFlow, no numpy). The firmware
calls :func:`verify_models` at start and refuses to run if an artifact is missing or its
SHA-256 differs from the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tomllib
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable

from firmware.errors import ModelError, ModelHashMismatch

logger = logging.getLogger(__name__)

LOCK_FILE = "build-lock.json"
REBUILD_HINT = "rebuild with `rollcall models build --out {dir}` (or `./install.sh --dev`)"
ROLES = ("detector", "landmarks", "embedder")
METHODS = ("copy", "dlib_resnet", "tf_frozen_graph")
QUANTIZATIONS = ("int8", "float32")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the manifest. Sizes in pixels (height, width); hashes are SHA-256 hex."""

    id: str
    role: str
    package: str
    package_version: str
    package_file: str
    package_sha256: str
    source_path: str
    source_sha256: str
    method: str
    artifact: str
    artifact_sha256: str
    input_size: tuple[int, int]
    colour_order: str
    normalisation: str
    input_mean: tuple[float, float, float]
    input_std: tuple[float, float, float]
    output_dim: int
    outputs: str
    quantization: str
    io_dtype: str
    alignment: str | None = None
    align_size: int | None = None
    align_padding: float | None = None
    default_threshold: float | None = None
    default_margin: float | None = None
    same_person_threshold: float | None = None
    flip_average: bool = False
    calibrated: bool = False

    @property
    def is_embedder(self) -> bool:
        return self.role == "embedder"


def manifest_text() -> str:
    """The manifest as shipped in the installed package."""
    return resources.files("models").joinpath("manifest.toml").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def load_raw_manifest() -> dict:
    """The whole parsed manifest (``build``, ``packages``, ``models`` tables)."""
    return tomllib.loads(manifest_text())


def load_manifest() -> dict[str, ModelSpec]:
    """Every model of the manifest by id, validated; raises :class:`ModelError` if malformed."""
    return parse_manifest(load_raw_manifest())


def parse_manifest(raw: dict) -> dict[str, ModelSpec]:
    packages = raw.get("packages", {})
    return {model_id: _spec(model_id, table, packages) for model_id, table in raw.get("models", {}).items()}


def _spec(model_id: str, table: dict, packages: dict) -> ModelSpec:
    package = packages.get(table.get("package"))
    if package is None:
        raise ModelError(f"manifest: model {model_id!r} names unknown package {table.get('package')!r}")
    values = dict(table, id=model_id, package_version=package["version"], package_file=package["file"],
                  package_sha256=package["sha256"])
    known = {f.name for f in fields(ModelSpec)}
    unknown = set(values) - known
    if unknown:
        raise ModelError(f"manifest: model {model_id!r} has unknown keys {sorted(unknown)}")
    try:
        for key in ("input_size", "input_mean", "input_std"):
            values[key] = tuple(values[key])
        spec = ModelSpec(**values)
    except (TypeError, KeyError) as exc:
        raise ModelError(f"manifest: model {model_id!r} is incomplete: {exc}") from exc
    _check_spec(spec)
    return spec


def _check_spec(spec: ModelSpec) -> None:
    problems = []
    if spec.role not in ROLES:
        problems.append(f"role {spec.role!r} not in {ROLES}")
    if spec.method not in METHODS:
        problems.append(f"method {spec.method!r} not in {METHODS}")
    if spec.quantization not in QUANTIZATIONS:
        problems.append(f"quantization {spec.quantization!r} not in {QUANTIZATIONS}")
    for name in ("package_sha256", "source_sha256", "artifact_sha256"):
        value = getattr(spec, name)
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            problems.append(f"{name} is not a SHA-256 hex digest")
    if spec.is_embedder and (spec.default_threshold is None or spec.alignment is None):
        problems.append("embedders need default_threshold and alignment")
    if problems:
        raise ModelError(f"manifest: model {spec.id!r}: " + "; ".join(problems))


def get_spec(model_id: str) -> ModelSpec:
    specs = load_manifest()
    if model_id not in specs:
        raise ModelError(f"unknown model id {model_id!r}; known: {', '.join(sorted(specs))}")
    return specs[model_id]


def model_path(model_id: str, models_dir: str | Path) -> Path:
    """Where the artifact of ``model_id`` lives under ``models_dir`` (not checked)."""
    return Path(models_dir) / get_spec(model_id).artifact


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_lock(models_dir: str | Path) -> dict:
    """The ``build-lock.json`` written by the build next to the artifacts ({} if none)."""
    path = Path(models_dir) / LOCK_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is unreadable ({exc}); {REBUILD_HINT.format(dir=models_dir)}") from exc


def artifact_status(spec: ModelSpec, models_dir: Path, lock: dict, strict: bool = False) -> tuple[str, str]:
    """("ok" | "recalibrated" | "missing" | "mismatch", actual sha256 or "")."""
    path = models_dir / spec.artifact
    if not path.is_file():
        return "missing", ""
    actual = sha256_file(path)
    if actual == spec.artifact_sha256:
        return "ok", actual
    entry = lock.get("models", {}).get(spec.id, {})
    if not strict and spec.calibrated and entry.get("sha256") == actual:
        return "recalibrated", actual
    return "mismatch", actual


def verify_models(models_dir: str | Path, ids: Iterable[str] | None = None, *, strict: bool = False,
                  specs: dict[str, ModelSpec] | None = None) -> dict[str, Path]:
    """Check artifacts against the manifest; return {id: path} of the verified ones.

    An int8 model re-calibrated on this machine (``rollcall models build --calib DIR``)
    is accepted if its hash is the one recorded in ``build-lock.json``, unless ``strict``.
    ``specs`` defaults to :func:`load_manifest`. Raises :class:`ModelError` (missing) or :class:`ModelHashMismatch` naming the file
    and how to rebuild.
    """
    models_dir = Path(models_dir)
    specs = load_manifest() if specs is None else specs
    wanted = list(specs) if ids is None else list(ids)
    lock = read_lock(models_dir)
    verified, missing, mismatched = {}, [], []
    for model_id in wanted:
        if model_id not in specs:
            raise ModelError(f"unknown model id {model_id!r}; known: {', '.join(sorted(specs))}")
        spec = specs[model_id]
        path = models_dir / spec.artifact
        status, actual = artifact_status(spec, models_dir, lock, strict)
        if status == "missing":
            missing.append(f"model {model_id!r}: {path} is missing")
        elif status == "mismatch":
            mismatched.append(f"model {model_id!r}: {path} has SHA-256 {actual}, the manifest pins "
                              f"{spec.artifact_sha256}")
        else:
            if status == "recalibrated":
                logger.warning("model %s: %s is a local re-calibration recorded in %s (not the manifest's build)",
                               model_id, path, LOCK_FILE)
            verified[model_id] = path
    if missing or mismatched:
        error = ModelHashMismatch if mismatched else ModelError
        raise error("; ".join(mismatched + missing) + "; " + REBUILD_HINT.format(dir=models_dir))
    return verified
