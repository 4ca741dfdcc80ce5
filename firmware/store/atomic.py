"""Atomic file replacement: temp file, fsync, rename, fsync the directory.

A power cut at any instant leaves either the old or the new content, never a mix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from firmware.errors import StoreError


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (a rename) to disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: Path, mode: int) -> None:
    """Create ``directory`` and every missing parent with ``mode`` (unlike ``mkdir(parents=True)``)."""
    missing = []
    directory = Path(directory)
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        try:
            new.mkdir(mode=mode)
        except FileExistsError:
            continue
        os.chmod(new, mode)  # mkdir's mode is filtered by the umask


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o600,
                       dir_mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically; the file gets ``mode`` (octal permissions).

    Missing parent directories are created (with ``dir_mode`` when given, e.g. 0o700).
    """
    path = Path(path)
    if dir_mode is None:
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        make_dirs(path.parent, dir_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from exc


def sweep_temp_files(root: Path) -> list[Path]:
    """Delete the temp files (``.<name>.<random>.tmp``) that interrupted atomic writes left
    under ``root``; call only while no writer runs (the Store does it at open, under its
    lock). Returns what was removed."""
    removed = []
    for path in Path(root).rglob(".*.tmp"):
        if path.is_file() and not path.is_symlink():
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed
