"""A cheroot server that bounds the TIME to receive a request, not just each read.

cheroot's ``timeout`` limits one socket read, so a client that sends a header line every
few seconds (slowloris) holds a worker thread forever; twelve of them took the console off
the air. Here every request gets a deadline: the request line and headers must arrive
within ``header_s`` seconds of the first byte, and the body within ``body_s(length)`` after
that (``BODY_MIN_BYTES_S`` bytes per second at least). A late client gets ``408`` and
its connection is closed. Idle keep-alive connections wait in cheroot's selector and hold
no worker. More worker threads than cheroot's default keep a burst of slow clients from
starving everyone else while they time out (``rollcall bench console --attack`` measures it).
"""

from __future__ import annotations

import socket
import time

from cheroot import server, wsgi
from cheroot.makefile import MakeFile

HEADER_S = 5.0
BODY_MIN_BYTES_S = 256 * 1024
BODY_BASE_S = 5.0
THREADS = 64
LISTEN_BACKLOG = 128


def body_s(length: int, base_s: float = BODY_BASE_S) -> float:
    """Seconds allowed to receive a body of ``length`` bytes after the headers."""
    return base_s + max(0, length) / BODY_MIN_BYTES_S


class DeadlineSocket:
    """A socket proxy whose reads fail with a timeout once the request deadline passed."""

    def __init__(self, sock: socket.socket, idle_s: float) -> None:
        self._sock = sock
        self._idle_s = idle_s
        self.deadline: float | None = None

    def start(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def extend_from_now(self, seconds: float) -> None:
        if self.deadline is not None:
            self.deadline = time.monotonic() + seconds

    def clear(self) -> None:
        self.deadline = None
        try:
            self._sock.settimeout(self._idle_s)
        except OSError:
            pass

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self._sock.settimeout(min(left, self._idle_s))
        return self._sock.recv_into(buffer, nbytes, flags)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class DeadlineRequest(server.HTTPRequest):
    """After the headers, the deadline becomes the body's allowance."""

    def read_request_headers(self) -> bool:
        ok = super().read_request_headers()
        try:
            length = int(self.inheaders.get(b"Content-Length", 0) or 0)
        except ValueError:
            length = 0
        self.conn.deadline_socket.extend_from_now(body_s(length, self.server.body_base_s))
        return ok


class DeadlineConnection(server.HTTPConnection):
    """An HTTP connection whose reads share one per-request deadline."""

    RequestHandlerClass = DeadlineRequest

    def __init__(self, srv, sock, makefile=MakeFile) -> None:
        super().__init__(srv, sock, makefile)
        self.deadline_socket = DeadlineSocket(sock, srv.timeout)
        self.rfile = makefile(self.deadline_socket, "rb", self.rbufsize)

    def communicate(self):
        self.deadline_socket.start(self.server.header_s)
        try:
            return super().communicate()
        finally:
            self.deadline_socket.clear()


class DeadlineServer(wsgi.Server):
    """``cheroot.wsgi.Server`` with per-request receive deadlines (see the module doc)."""

    ConnectionClass = DeadlineConnection

    def __init__(self, bind_addr, app, *, header_s: float = HEADER_S, body_base_s: float = BODY_BASE_S,
                 numthreads: int = THREADS, **kwargs) -> None:
        kwargs.setdefault("request_queue_size", LISTEN_BACKLOG)
        super().__init__(bind_addr, app, numthreads=numthreads, max=numthreads, **kwargs)
        self.header_s, self.body_base_s = header_s, body_base_s
