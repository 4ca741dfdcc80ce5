"""`rollcall config validate|show`."""

from __future__ import annotations

import argparse
import sys

from pydantic import BaseModel

from firmware.config import Config, config_path, dump_config, load_config


def register(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--config", help="config file (default: $ROLLCALL_CONFIG or /etc/rollcall/config.toml)")
    if command == "config validate":
        parser.add_argument("file", nargs="?", help="file to validate (default: --config)")
        parser.set_defaults(func=validate)
    elif command == "config reference":
        parser.set_defaults(func=reference)
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


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            rows += _rows(type(default), f"{key}.")
            continue
        shown = "(none)" if default is None else f"`{default!r}`" if default == "" else f"`{default}`"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | {shown} | {meaning} |")
    return rows


def reference(args: argparse.Namespace) -> int:
    """Print every setting as a Markdown table (key, default, meaning), from the schema."""
    print("| key | default | meaning |\n|---|---|---|")
    print("\n".join(_rows(Config, "")))
    return 0
