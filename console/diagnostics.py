"""The diagnostics bundle: a zip with the config (no secrets), versions, status, the audit
log and the last ``LOG_LINES`` lines of each log in ``paths.log_dir``, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import platform
import sys
import zipfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from firmware.config import Config, dump_config
from firmware.runtime.logfiles import redact, tail_lines

logger = logging.getLogger(__name__)

LOG_LINES = 2000
MAX_LOG_FILES = 10
PACKAGES = ("rollcall", "bottle", "cheroot", "numpy", "opencv-python-headless", "ai-edge-litert",
            "tinydb", "paho-mqtt", "gpiozero", "pydantic", "argon2-cffi")
SECRET_KEYS = ("username", "password_file", "key_file")


def redacted_config(config: Config) -> str:
    """The config as TOML with anything secret-adjacent replaced by 'redacted'."""
    data = config.model_copy(deep=True)
    if data.mqtt.username:
        data.mqtt.username = "redacted"
    for key in ("password_file", "key_file"):
        if getattr(data.mqtt, key) is not None:
            setattr(data.mqtt, key, Path("redacted"))
    if data.console.key_file is not None:
        data.console.key_file = Path("redacted")
    return dump_config(data)


def versions() -> dict:
    out = {"python": sys.version, "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _log_tails(log_dir: Path, lines: int = LOG_LINES) -> list[tuple[str, str]]:
    """(file name, its last ``lines`` lines with secrets redacted) for the newest logs."""
    try:
        files = sorted((p for p in Path(log_dir).glob("*.log*") if p.is_file()),
                       key=lambda p: p.stat().st_mtime, reverse=True)[:MAX_LOG_FILES]
    except OSError:
        return []
    tails = []
    for path in files:
        try:
            tails.append((path.name, "\n".join(redact(line) for line in tail_lines(path, lines)) + "\n"))
        except OSError as exc:
            logger.warning("cannot read log %s: %s", path, exc)
    return tails


def build_bundle(config: Config, status: dict | None, status_error: str | None,
                 audit: list[dict] | None = None) -> bytes:
    """Zip bytes of the diagnostics bundle."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("config.toml", redacted_config(config))
        bundle.writestr("versions.json", json.dumps(versions(), indent=2))
        bundle.writestr("status.json", json.dumps({"status": status, "error": status_error,
                                                   "made_at": datetime.now(timezone.utc).isoformat()},
                                                  indent=2, default=str))
        if audit is not None:
            bundle.writestr("audit.json", redact(json.dumps(audit, indent=2, default=str)))
        tails = _log_tails(config.paths.log_dir)
        for name, text in tails:
            bundle.writestr(f"logs/{name}", text)
        if not tails:
            bundle.writestr("logs/README.txt", f"no log files in {config.paths.log_dir} "
                            "(the firmware writes firmware.log there once it has started)\n")
    return buffer.getvalue()
