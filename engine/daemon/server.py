"""/healthz, /readyz and /metrics over plain HTTP, in a daemon thread.

`/healthz` answers 200 while the process runs its loop; `/readyz` asks the runner whether
the state store and every source are reachable (503 with the reasons otherwise); `/metrics`
is Prometheus' text format.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Readiness = Callable[[], list[str]]  # problems; empty means ready


def serve(listen: str, registry: CollectorRegistry, readiness: Readiness,
          alive: Callable[[], bool]) -> ThreadingHTTPServer:
    """Start the server on `host:port` (port 0 picks one); returns it (`.server_address`)."""
    host, _, port = listen.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(200 if alive() else 503, b"ok\n" if alive() else b"stopping\n")
            elif self.path == "/readyz":
                problems = readiness()
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

    server = ThreadingHTTPServer((host or "127.0.0.1", int(port or 9090)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="trailguard-http", daemon=True).start()
    return server
