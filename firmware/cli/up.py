"""`rollcall up`: the firmware and the console together in the foreground (dev boxes).

On a device the two run as separate systemd units. On a laptop or a fresh Debian box this
starts both as child processes with a dev config under ``./var/`` (written on first use),
prints the console URL, and stops both on Ctrl-C / SIGTERM. A child that dies is
restarted with a backoff, as systemd would.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

from firmware.config import Config, load_config, machine_device_id, write_config_atomic

logger = logging.getLogger(__name__)

RESTART_MAX_S = 30.0
RESTART_EXIT = 75  # firmware.runtime.app.RESTART_EXIT: the firmware asks to be started again
HEALTHY_RUN_S = 60.0  # a child that ran this long before dying starts again after 1 s


def dev_config(root: Path) -> Config:
    """The dev-box configuration: everything under ``root`` (usually ./var), mock GPIO,
    console on 127.0.0.1:8080, no broker until one is configured."""
    root = root.resolve()
    cfg = Config()
    cfg.device.id = machine_device_id()
    cfg.paths.data_dir = root / "data"
    cfg.paths.models_dir = root / "models"
    cfg.paths.control_socket = root / "run" / "control.sock"
    cfg.paths.log_dir = root / "log"
    cfg.console.secrets_dir = root / "console"
    cfg.console.bind = "127.0.0.1"
    cfg.gpio.pin_factory = "mock"
    return cfg


def ensure_dev_config(path: Path) -> Config:
    """Load ``path``, writing the dev config there first if it does not exist."""
    if not path.exists():
        write_config_atomic(dev_config(path.parent), path, mode=0o640)
        logger.info("wrote dev config %s", path)
    return load_config(path)


def register(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--config", default="var/config.toml", help="config file (created if missing)")
    parser.add_argument("--source", help="camera source for the firmware (auto, webcam, a video file...)")
    parser.add_argument("--port", type=int, help="console port (default from config)")
    parser.set_defaults(func=run)


def _child_cmd(kind: str, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "firmware.cli", kind, "--config", str(args.config)]
    if kind == "run" and args.source:
        cmd += ["--source", args.source]
    if kind == "console" and args.port:
        cmd += ["--port", str(args.port)]
    return cmd


class _Child:
    """One supervised child process with restart backoff (1 s, doubling to 30 s while it
    keeps dying early; back to 1 s after a run of ``HEALTHY_RUN_S`` seconds)."""

    def __init__(self, name: str, cmd: list[str], spawn=subprocess.Popen):
        self.name, self.cmd, self.spawn = name, cmd, spawn
        self.proc: subprocess.Popen | None = None
        self.backoff = 1.0
        self.next_start = 0.0
        self.started_at = 0.0

    def poll(self, now: float) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        if self.proc is not None and self.proc.returncode == RESTART_EXIT:
            logger.info("%s asked to be restarted; starting it again", self.name)
            self.proc, self.next_start = None, now
        elif self.proc is not None:
            if now - self.started_at >= HEALTHY_RUN_S:
                self.backoff = 1.0  # it was healthy: this is a new failure, not a crash loop
            logger.warning("%s exited with code %s; restarting in %.0f s", self.name, self.proc.returncode, self.backoff)
            self.next_start = now + self.backoff
            self.backoff = min(self.backoff * 2, RESTART_MAX_S)
            self.proc = None
        if now >= self.next_start:
            self.proc = self.spawn(self.cmd)
            self.started_at = now

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _first_run_hint(cfg: Config) -> str:
    """Until an admin account exists, the console's first-run page asks for a one-time
    setup code (so a stranger on the LAN cannot claim the device first): make sure one
    exists and say where it is. It is shown on this terminal only, never logged."""
    from provisioning.credentials import ensure_setup_code

    code = ensure_setup_code(cfg.console.secrets_dir)
    if code is None:
        return ""
    return (f"First visit: enter the one-time setup code {code} "
            f"(also in {cfg.console.secrets_dir / 'setup-code'}) and choose the admin password.\n")


def run(args: argparse.Namespace) -> int:
    cfg = ensure_dev_config(Path(args.config))
    port = args.port or cfg.console.port
    host = "localhost" if cfg.console.bind in ("127.0.0.1", "0.0.0.0") else cfg.console.bind
    print(f"Rollcall dev mode: firmware + console. Console: http://{host}:{port}/  (Ctrl-C stops)\n"
          f"{_first_run_hint(cfg)}", end="", flush=True)
    children = [_Child("firmware", _child_cmd("run", args)), _Child("console", _child_cmd("console", args))]
    stopping = False

    def _stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stopping:
            now = time.monotonic()
            for child in children:
                child.poll(now)
            time.sleep(0.5)
    finally:
        for child in reversed(children):
            child.stop()
    return 0

