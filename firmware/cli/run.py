"""`rollcall run` (and `python -m firmware`): run the device until SIGTERM / SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from firmware.config import Config, PathsConfig, config_path, load_config
from firmware.errors import ConfigError, RollcallError
from firmware.runtime.app import RESTART_EXIT, App
from firmware.runtime.logfiles import add_file_log, clear_start_error, write_start_error

logger = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--config", help="config file (default: $ROLLCALL_CONFIG or /etc/rollcall/config.toml)")
    parser.add_argument("--source", help="auto | picamera2 | webcam[:N] | /dev/videoN | video file | image folder")
    parser.add_argument("--max-frames", type=int, help="stop after this many processed frames")
    parser.add_argument("--data-dir", type=Path, help="override paths.data_dir")
    parser.add_argument("--models-dir", type=Path, help="override paths.models_dir")
    parser.add_argument("--socket", type=Path, help="override paths.control_socket")
    parser.set_defaults(func=run)


def load_run_config(args: argparse.Namespace) -> tuple[Config, Path]:
    """The config file with the command-line overrides applied."""
    path = config_path(args.config)
    config = load_config(path)
    paths = config.paths
    if args.data_dir:
        paths.data_dir = args.data_dir
    if args.models_dir:
        paths.models_dir = args.models_dir
    if args.socket:
        paths.control_socket = args.socket
    return config, path


def _log_dir_of(path: Path) -> Path:
    """``paths.log_dir`` of a config file that does not validate (best effort)."""
    import tomllib

    try:
        return Path(tomllib.loads(path.read_text(encoding="utf-8"))["paths"]["log_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return PathsConfig().log_dir


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RollcallError) else f"{type(exc).__name__}: {exc}"


def run(args: argparse.Namespace) -> int:
    """Start (recording why when that fails), run until stopped; exit code RESTART_EXIT
    when a restart was asked for (systemd and `rollcall up` start the firmware again)."""
    try:
        config, path = load_run_config(args)
    except ConfigError as exc:
        write_start_error(_log_dir_of(config_path(args.config)), _describe(exc))
        raise
    add_file_log(config.paths.log_dir)
    app = App(config, config_file=path, source=args.source, max_frames=args.max_frames)
    previous = {sig: signal.signal(sig, lambda *_: app.stop_event.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _start(app, config.paths.log_dir)
        reason = app.run()
        logger.info("device stopped: %s", reason)
    finally:
        app.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return RESTART_EXIT if app.restart_requested else 0


def _start(app: App, log_dir: Path) -> None:
    try:
        app.start()
    except Exception as exc:
        write_start_error(log_dir, _describe(exc))
        raise
    clear_start_error(log_dir)
