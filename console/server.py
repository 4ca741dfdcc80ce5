"""`rollcall console`: serve the web console with cheroot (HTTP, or HTTPS with the
certificate made at provisioning)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from console.app import create_app
from console.slowclients import DeadlineServer
from firmware.config import config_path, load_config
from firmware.errors import ConfigError

logger = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--config", help="config file (default: $ROLLCALL_CONFIG or /etc/rollcall/config.toml)")
    parser.add_argument("--bind", help="address to listen on (default: console.bind)")
    parser.add_argument("--port", type=int, help="TCP port (default: console.port)")
    parser.add_argument("--socket", help="firmware control socket (default: paths.control_socket)")
    parser.set_defaults(func=run)


def make_server(app, bind: str, port: int, config) -> DeadlineServer:
    """A cheroot server for ``app`` with per-request receive deadlines (slow clients get
    408); HTTPS when ``console.https`` is on."""
    server = DeadlineServer((bind, port), app, server_name="rollcall-console",
                            shutdown_timeout=2, timeout=30)
    if config.console.https:
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        if not (config.console.cert_file and config.console.key_file):
            raise ConfigError("console.https needs console.cert_file and console.key_file "
                              "(made by `rollcall provision`)")
        server.ssl_adapter = BuiltinSSLAdapter(str(config.console.cert_file),
                                               str(config.console.key_file))
    return server


def run(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    config = load_config(path)
    app = create_app(path, socket_path=args.socket)
    bind, port = args.bind or config.console.bind, args.port or config.console.port
    server = make_server(app, bind, port, config)
    stop = threading.Event()

    def _stop(signum, frame) -> None:
        stop.set()
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    scheme = "https" if config.console.https else "http"
    logger.info("console on %s://%s:%d (config %s)", scheme, bind, port, path)
    try:
        server.safe_start()
    finally:
        server.stop()
    logger.info("console stopped")
    return 0
