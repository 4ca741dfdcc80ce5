"""`rollcall config validate|show`."""

from __future__ import annotations

import argparse
import sys

from firmware.config import config_path, dump_config, load_config


def register(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--config", help="config file (default: $ROLLCALL_CONFIG or /etc/rollcall/config.toml)")
    if command == "config validate":
        parser.add_argument("file", nargs="?", help="file to validate (default: --config)")
        parser.set_defaults(func=validate)
    else:
        parser.set_defaults(func=show)


def validate(args: argparse.Namespace) -> int:
    path = config_path(args.file or args.config)
    if not path.exists():
        print(f"{path}: no such file", file=sys.stderr)
        return 2
    load_config(path)  # raises ConfigError with every problem listed
    print(f"{path}: OK")
    return 0


def show(args: argparse.Namespace) -> int:
    sys.stdout.write(dump_config(load_config(args.config)))
    return 0
