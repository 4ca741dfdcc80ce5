"""`rollcall run` (and `python -m firmware`): run the device until SIGTERM / SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from firmware.config import Config, config_path, load_config
from firmware.runtime.app import App

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


def run(args: argparse.Namespace) -> int:
    config, path = load_run_config(args)
    app = App(config, config_file=path, source=args.source, max_frames=args.max_frames)
    previous = {sig: signal.signal(sig, lambda *_: app.stop_event.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with app:
            reason = app.run()
        logger.info("device stopped: %s", reason)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
