"""Uploaded files: photos (admitted by :mod:`firmware.inference.images`, the one set of
image limits, then decoded and re-encoded server-side) and the zip of photos a bulk
enrolment comes with.

The client's file names are only ever shown (escaped) or looked up in the zip's own
directory, never used as a path. A zip is refused before anything is extracted when it
declares too many files or too many bytes, and each member is read with a hard limit (a
zip bomb can lie about its sizes): a member that inflates past the limit, or more than
``MAX_RATIO`` times its compressed size, is refused.
"""

from __future__ import annotations

import io
import logging
import zipfile

from firmware.errors import ImageError
from firmware.inference import images

logger = logging.getLogger(__name__)

MAX_ZIP_MEMBERS = 2000
MAX_ZIP_TOTAL = 512 * 1024 * 1024   # bytes, uncompressed, declared
MAX_RATIO = 100                     # uncompressed / compressed per member (JPEGs barely compress)


class ZipRejected(ValueError):
    """The zip cannot be used (corrupt, too big, a bomb); the message says why."""


def clean_image(data: bytes, max_bytes: int) -> bytes:
    """Validated, re-encoded JPEG bytes of an uploaded photo (raises ImageError with a reason)."""
    return images.clean_jpeg(data, max_bytes=max_bytes)


def display_name(filename: str | None, index: int) -> str:
    """A short label for messages; never used as a path."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:80] or f"photo {index + 1}"


class PhotoZip:
    """Photos of a bulk upload, looked up by the names in the CSV (``a/b.jpg`` or just
    ``b.jpg`` when that base name is unique in the zip)."""

    def __init__(self, data: bytes, max_member_bytes: int = images.MAX_BYTES) -> None:
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = [i for i in self._zip.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise ZipRejected(f"the zip file is corrupt or not a zip ({exc})") from None
        if len(infos) > MAX_ZIP_MEMBERS:
            raise ZipRejected(f"the zip holds {len(infos)} files; the limit is {MAX_ZIP_MEMBERS}")
        total = sum(i.file_size for i in infos)
        if total > MAX_ZIP_TOTAL:
            raise ZipRejected(f"the zip would unpack to {total / 2**20:.0f} MiB; the limit is "
                              f"{MAX_ZIP_TOTAL / 2**20:.0f} MiB")
        self.max_member_bytes = max_member_bytes
        self._by_name = {i.filename.lstrip("/"): i for i in infos}
        bases: dict[str, list[zipfile.ZipInfo]] = {}
        for info in infos:
            bases.setdefault(info.filename.rsplit("/", 1)[-1], []).append(info)
        self._by_base = {base: found[0] for base, found in bases.items() if len(found) == 1}

    def read(self, name: str) -> bytes:
        """The bytes of member ``name``; KeyError when absent, ValueError when refused."""
        info = self._by_name.get(name) or self._by_base.get(name)
        if info is None:
            raise KeyError(f"{name} is not in the zip")
        if info.file_size > self.max_member_bytes:
            raise ValueError(f"{name} is too large ({info.file_size / 2**20:.1f} MiB)")
        try:
            with self._zip.open(info) as member:
                data = member.read(self.max_member_bytes + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
            raise ValueError(f"{name} cannot be unpacked ({exc})") from None
        if len(data) > self.max_member_bytes or len(data) > MAX_RATIO * max(info.compress_size, 1):
            raise ValueError(f"{name} inflates far beyond its compressed size (a zip bomb?): refused")
        return data

    def close(self) -> None:
        self._zip.close()


__all__ = ["ImageError", "PhotoZip", "ZipRejected", "clean_image", "display_name"]
