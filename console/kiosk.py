"""Who may see the kiosk page without logging in: the device's own screen (a browser on
loopback) and browsers holding the per-device kiosk token (revocable in Settings).

The token is 32 random bytes (URL-safe) kept in ``<secrets_dir>/kiosk-token`` (0600). A
browser opens ``/kiosk?token=...`` once; the console then keeps the token in an HttpOnly
cookie and redirects to ``/kiosk`` so the token does not stay in the address bar.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
from pathlib import Path

from firmware.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

TOKEN_FILE = "kiosk-token"
COOKIE = "rc_kiosk"
COOKIE_MAX_AGE_S = 400 * 86400  # browsers cap cookie lifetimes at about 400 days


class KioskToken:
    """The per-device kiosk token: make, show, check, revoke."""

    def __init__(self, secrets_dir: Path) -> None:
        self.path = Path(secrets_dir) / TOKEN_FILE

    def current(self) -> str | None:
        try:
            return self.path.read_text().strip() or None
        except OSError:
            return None

    def renew(self) -> str:
        """A new token; browsers holding the old one lose the kiosk page."""
        token = secrets.token_urlsafe(32)
        atomic_write_bytes(self.path, token.encode(), mode=0o600)
        return token

    def revoke(self) -> None:
        self.path.unlink(missing_ok=True)

    def valid(self, token: str | None) -> bool:
        current = self.current()
        return bool(token and current) and hmac.compare_digest(token.encode(), current.encode())


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8 and ::1 (the device's own display)."""
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback
