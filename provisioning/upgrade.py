"""Upgrade hook called by install.sh: migrate the firmware's data files in place.

install.sh backs the data dir up first (/var/backups/rollcall/data-<UTC time>.tar.gz) and
runs this as the service user with the firmware stopped::

    /opt/rollcall/venv/bin/python -m provisioning.upgrade --data-dir /var/lib/rollcall \
        --config /etc/rollcall/config.toml

The migration itself belongs to the store: ``firmware.store.migrate.migrate(data_dir)``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def migrate(data_dir: Path, timezone: str | None = None) -> str:
    """Run the store's migration (in the device's time zone, which decides the day files);
    returns a one-line result for the installer's output."""
    try:
        module = importlib.import_module("firmware.store.migrate")
    except ModuleNotFoundError as exc:
        if exc.name not in ("firmware.store.migrate", "firmware.store"):
            raise
        # MIGRATION HOOK: firmware.store.migrate is not in this version; nothing to migrate.
        return "no data migration in this version (firmware.store.migrate absent)"
    kwargs = {}
    if timezone and "timezone" in inspect.signature(module.migrate).parameters:
        kwargs["timezone"] = timezone
    result = module.migrate(Path(data_dir), **kwargs)
    if isinstance(result, dict) and result.get("from") == result.get("to"):
        return f"data files already current (format v{result.get('to')})"
    return f"data migrated: {result}" if result else "data files already current"


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m provisioning.upgrade --data-dir DIR``."""
    parser = argparse.ArgumentParser(prog="python -m provisioning.upgrade", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path, help="the firmware's data dir")
    parser.add_argument("--config", type=Path, help="config file (for device.timezone)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.data_dir.is_dir():
        print(f"{args.data_dir}: no such directory", file=sys.stderr)
        return 2
    try:
        timezone = None
        if args.config and args.config.exists():
            from firmware.config import load_config

            timezone = load_config(args.config).device.timezone
        print(migrate(args.data_dir, timezone))
    except Exception as exc:  # noqa: BLE001 - report, keep the backup, fail the install
        print(f"data migration FAILED: {exc} (the backup is untouched; restore it with tar -xzf)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
