"""The firmware's files in ``paths.log_dir``: a small rotating log (for the console's
diagnostics bundle), and the last start error (shown verbatim by the console while the
firmware is down). Both are 0640 so the console (group ``rollcall``) can read them.

Secrets never reach the log on purpose; :func:`redact` is the second fence, applied to
every line that leaves the device in a diagnostics bundle.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import time
from collections import deque
from pathlib import Path

from firmware.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

LOG_FILE = "firmware.log"
START_ERROR_FILE = "last-start-error.txt"
LOG_MAX_BYTES = 1024 * 1024
LOG_BACKUPS = 2
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_SECRET_PATTERNS = (
    # key = value / key: value / "key": "value" for secret-sounding keys
    re.compile(r"""(?i)(["']?\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|setup[_-]?code|csrf|cookie|authorization)[\w.-]*["']?\s*[:=]\s*)("[^"]*"|'[^']*'|\S+)"""),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(\w+://[^:/\s@]+:)[^@\s]+@"),  # user:password@ in URLs
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"\$argon2[a-z]*\$[^\s\"']+"),
    re.compile(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}\b"),  # console setup codes
)


def redact(text: str) -> str:
    """``text`` with passwords, tokens, keys, hashes and setup codes replaced by ``***``."""
    text = _SECRET_PATTERNS[1].sub(lambda m: m.group(1) + " ***", text)
    text = _SECRET_PATTERNS[0].sub(lambda m: m.group(1) + "***", text)
    text = _SECRET_PATTERNS[2].sub(lambda m: m.group(1) + "***@", text)
    for pattern in _SECRET_PATTERNS[3:]:
        text = pattern.sub("***", text)
    return text


class _GroupReadableHandler(logging.handlers.RotatingFileHandler):
    """A rotating file handler whose files are 0640 whatever the umask."""

    def _open(self):
        stream = super()._open()
        try:
            os.chmod(self.baseFilename, 0o640)
        except OSError:
            pass
        return stream


def add_file_log(log_dir: Path, name: str = LOG_FILE) -> logging.Handler | None:
    """Also log to ``log_dir/name`` (1 MiB x 3, 0640); None when the folder is not writable."""
    try:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        handler = _GroupReadableHandler(Path(log_dir) / name, maxBytes=LOG_MAX_BYTES,
                                        backupCount=LOG_BACKUPS, encoding="utf-8")
    except OSError as exc:
        logger.warning("no log file in %s (%s): logs go to the journal only", log_dir, exc)
        return None
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.getLogger().addHandler(handler)
    return handler


def tail_lines(path: Path, count: int, max_bytes: int = 4 * 1024 * 1024) -> list[str]:
    """The last ``count`` lines of a text file (reads at most ``max_bytes`` from its end)."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - max_bytes))
        lines = deque(handle.read().decode("utf-8", "replace").splitlines(), maxlen=count)
    return list(lines)


def write_start_error(log_dir: Path, message: str, clock=time.time) -> None:
    """Keep why the firmware could not start, for the console to show verbatim."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock()))
    try:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(log_dir) / START_ERROR_FILE,
                           f"{stamp}\n{redact(message)}\n".encode("utf-8"), mode=0o640)
    except OSError as exc:
        logger.error("cannot write %s: %s", Path(log_dir) / START_ERROR_FILE, exc)


def clear_start_error(log_dir: Path) -> None:
    """The firmware started: there is no start error any more."""
    try:
        (Path(log_dir) / START_ERROR_FILE).unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("cannot remove %s: %s", Path(log_dir) / START_ERROR_FILE, exc)


def read_start_error(log_dir: Path) -> tuple[str, str] | None:
    """(UTC ISO time, message) of the last failed start, or None."""
    try:
        text = (Path(log_dir) / START_ERROR_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    stamp, _, message = text.partition("\n")
    return stamp.strip(), message.rstrip("\n")
