"""/healthz, /readyz and /metrics over plain HTTP, on a few threads whatever the clients do.

`/healthz` answers 200 while the process runs its loop; `/readyz` asks the runner whether
the state store and every source are reachable (503 with the reasons otherwise, redacted:
the container serves this on 0.0.0.0 and a reason quotes the state URL); `/metrics` is
Prometheus' text format.

Bounded by design: http.server's ThreadingHTTPServer gave every connection a thread that
waited for its request forever, so 1,000 idle connections held 1,000 threads. Here one
thread waits on a selector for connections to send something, and only a readable
connection is handed to a fixed pool of workers, each reading its request under a timeout.
An idle connection costs a file descriptor until IDLE_TIMEOUT, not a thread; beyond
MAX_WAITING waiting connections the oldest is closed; a probe therefore gets its answer while
others hold sockets open.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from engine.redaction import redact

log = logging.getLogger(__name__)
Readiness = Callable[[], list[str]]  # problems; empty means ready
WORKERS = 4  # probes and a scraper: a handful of requests a second at most
MAX_WAITING = 256  # connections waiting for their first byte
IDLE_TIMEOUT = 10.0  # seconds a connection may stay silent before it is closed
REQUEST_TIMEOUT = 5.0  # seconds a worker waits for the rest of a request, or to send


def _handler(registry: CollectorRegistry, readiness: Readiness,
             alive: Callable[[], bool]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT  # socket timeout: a slow sender frees the worker

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(200 if alive() else 503, b"ok\n" if alive() else b"stopping\n")
            elif self.path == "/readyz":
                problems = [redact(p) for p in readiness()]
                body = ("ready\n" if not problems else "\n".join(problems) + "\n").encode()
                self._answer(503 if problems else 200, body)
            elif self.path == "/metrics":
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            else:
                self._answer(404, b"not found\n")

        def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None  # probes every few seconds are not news

    return Handler


class HealthServer:
    """The listening socket, the selector thread and the worker pool."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        self.handler = handler
        self.socket = socket.create_server(address, reuse_port=False)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._waiting: OrderedDict[socket.socket, float] = OrderedDict()  # -> deadline
        # connections to serve; None tells a worker to end
        self._ready: queue.Queue[socket.socket | None] = queue.Queue(maxsize=WORKERS * 4)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept_loop, name="trailguard-http",
                                          daemon=True)]
        self._threads += [threading.Thread(target=self._work, name=f"trailguard-http-{n}",
                                           daemon=True) for n in range(WORKERS)]
        for thread in self._threads:
            thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.5):
                if key.fileobj is self.socket:
                    self._accept()
                else:
                    self._hand_over(key.fileobj)  # type: ignore[arg-type]
            self._expire(time.monotonic())
        for connection in list(self._waiting):
            self._drop(connection)
        self._selector.close()
        self.socket.close()

    def _accept(self) -> None:
        try:
            connection, _ = self.socket.accept()
        except OSError:  # BlockingIOError (another wake-up took it), or out of descriptors
            return
        if len(self._waiting) >= MAX_WAITING:
            self._drop(next(iter(self._waiting)))  # the oldest silent one makes room
        self._waiting[connection] = time.monotonic() + IDLE_TIMEOUT
        self._selector.register(connection, selectors.EVENT_READ)

    def _hand_over(self, connection: socket.socket) -> None:
        self._selector.unregister(connection)
        self._waiting.pop(connection, None)
        try:
            self._ready.put_nowait(connection)
        except queue.Full:  # every worker busy and a backlog: refuse rather than pile up
            connection.close()

    def _expire(self, now: float) -> None:
        while self._waiting:
            connection, deadline = next(iter(self._waiting.items()))
            if deadline > now:
                return
            self._drop(connection)

    def _drop(self, connection: socket.socket) -> None:
        self._waiting.pop(connection, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection)
        connection.close()

    def _work(self) -> None:
        while True:
            connection = self._ready.get()
            if connection is None:
                return
            try:
                connection.setblocking(True)
                connection.settimeout(REQUEST_TIMEOUT)
                self.handler(connection, connection.getpeername(), self)  # type: ignore[arg-type]
            except OSError:
                pass  # the client went away or timed out: nothing to tell it
            except Exception as exc:  # a failing probe must not cost a worker
                log.warning("health server: %s", exc)
            finally:
                connection.close()

    def shutdown(self) -> None:
        """Stop accepting and let the workers end (they are daemon threads either way)."""
        self._stop.set()
        for _ in range(WORKERS):
            try:
                self._ready.put_nowait(None)
            except queue.Full:
                break
        self._threads[0].join(timeout=2.0)


def serve(listen: str, registry: CollectorRegistry, readiness: Readiness,
          alive: Callable[[], bool]) -> HealthServer:
    """Start the server on `host:port` (port 0 picks one); returns it (`.server_address`)."""
    host, _, port = listen.rpartition(":")
    return HealthServer((host or "127.0.0.1", int(port or 9090)), _handler(registry, readiness,
                                                                           alive))
