"""`rollcall models build|verify|list`."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from firmware.errors import ModelError
from models.registry import LOCK_FILE, artifact_status, load_manifest, read_lock, verify_models


def register(parser: argparse.ArgumentParser, command: str) -> None:
    if command == "models build":
        parser.add_argument("--out", type=Path, help="artifact folder (default: $ROLLCALL_MODELS_DIR or "
                                                     "the config's paths.models_dir)")
        parser.add_argument("--only", nargs="+", metavar="ID", help="build only these model ids")
        parser.add_argument("--calib", type=Path, help="folder of face photos for int8 calibration "
                                                       "(default: $ROLLCALL_CALIB_DIR or ../shared/data/lfw-dev/images)")
        parser.add_argument("--from", dest="from_dir", type=Path, metavar="DIR",
                            help="copy prebuilt artifacts from DIR (checked against the manifest) instead of building")
        parser.add_argument("--config", help="config file, for paths.models_dir")
        parser.set_defaults(func=build)
    elif command == "models verify":
        parser.add_argument("--dir", type=Path, help="artifact folder (default: as for build)")
        parser.add_argument("--only", nargs="+", metavar="ID", help="verify only these model ids")
        parser.add_argument("--strict", action="store_true",
                            help="accept only the manifest's hashes (ignore locally re-calibrated int8 builds)")
        parser.add_argument("--config", help="config file, for paths.models_dir")
        parser.set_defaults(func=verify)
    else:
        parser.add_argument("--dir", type=Path, help="also show the status of artifacts in this folder")
        parser.set_defaults(func=list_models)


def resolve_models_dir(explicit: Path | None, config: str | None = None) -> Path:
    """--out/--dir, else $ROLLCALL_MODELS_DIR, else the config's ``paths.models_dir``."""
    if explicit is not None:
        return explicit
    if os.environ.get("ROLLCALL_MODELS_DIR"):
        return Path(os.environ["ROLLCALL_MODELS_DIR"])
    from firmware.config import load_config

    try:
        return Path(load_config(config).paths.models_dir)
    except (OSError, ValueError) as exc:
        raise ModelError(f"no models folder given and the config cannot be read ({exc}); pass --out DIR") from exc


def build(args: argparse.Namespace) -> int:
    from models.builder import BuildOptions, build as run_build

    out = resolve_models_dir(args.out, args.config)
    started = time.monotonic()
    options = BuildOptions(out=out, only=args.only, calib=args.calib, from_dir=args.from_dir)
    for model_id, status in run_build(options).items():
        print(f"{model_id:18} {status}")
    print(f"models in {out} ({time.monotonic() - started:.1f} s)")
    return 0


def verify(args: argparse.Namespace) -> int:
    models_dir = resolve_models_dir(args.dir, args.config)
    verified = verify_models(models_dir, args.only, strict=args.strict)  # raises with the rebuild hint
    for model_id, path in verified.items():
        print(f"{model_id:18} OK  {path}")
    return 0


def list_models(args: argparse.Namespace) -> int:
    lock = read_lock(args.dir) if args.dir else {}
    for spec in load_manifest().values():
        size = "x".join(str(v) for v in spec.input_size)
        line = f"{spec.id:18} {spec.role:9} {spec.quantization:7} in {size:7} out {spec.output_dim:<5}"
        if spec.default_threshold is not None:
            line += f" cos>={spec.default_threshold}"
        if args.dir:
            line += f"  [{artifact_status(spec, Path(args.dir), lock)[0]}]"
        print(line)
    if args.dir and lock:
        print(f"({LOCK_FILE} present in {args.dir})")
    return 0
