"""Adversarial configs, stores and clients: a bad config is reported (every problem, with its
line, exit 2), never a traceback; no password or token is printed; a store lost mid-command
is not a config error; dead letters and idle connections cost bounded work (issue 15 §3, §8,
§9, §11).

Each test goes through the real path: the `trailguard` command line in a subprocess, a real
daemon, a real Redis (a private `redis-server` with a password, started and killed here, so
the shared one is never touched), real sockets.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.daemon.server import serve
from engine.errors import StateError
from engine.state import open_store
from tests.support.cli import REPO, run_cli
from tests.support.daemon import Daemon
from tests.support.records import record
from tests.support.waiting import wait_until

PASSWORD = "Pw-5ecret-4-redis"
TOKEN = "xoxb-1111111111-2222222222-TOKENabcdefSECRET"
RULE = """\
id: token
title: A token was issued
severity: high
condition: eventName == 'GetAuthorizationToken'
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- a private Redis with a password --------------------------------------------------

class PrivateRedis:
    """`redis-server --requirepass` on a free port, in the foreground: this test owns it."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [str(shutil.which("redis-server")), "--port", str(self.port), "--bind", "127.0.0.1",
             "--requirepass", PASSWORD, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(self.answers, 10.0):
            self.kill()
            pytest.skip("the private redis-server did not start")

    def answers(self) -> bool:
        try:
            return b"PONG" in self._ask("PING")
        except OSError:
            return False

    def _ask(self, command: str) -> bytes:
        """The answers to AUTH and `command`, read until Redis has nothing more to say."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
            conn.sendall(f"AUTH {PASSWORD}\r\n{command}\r\n".encode())
            answer = b""
            try:
                while chunk := conn.recv(1 << 16):
                    answer += chunk
                    conn.settimeout(0.2)
            except TimeoutError:
                pass
            return answer

    def clients(self) -> int:
        return self._ask("CLIENT LIST").count(b"id=") - 1  # not this connection

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary")
    server = PrivateRedis()
    yield server
    server.kill()


# --- §3: config checked at load, every problem at once --------------------------------

BAD_CONFIG = """\
rules: [rules/]
state: memory://
sources:
  - {type: sqss}
  - type: files
    pathz: [events/]
  - {type: sqs, queue_url: q, max_messages: 50}
server:
  grace_period: soon
outputs:
  s: {type: sns}
"""


def _bad_config(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "token.yml").write_text(RULE)
    config = tmp_path / "trailguard.yml"
    config.write_text(BAD_CONFIG)
    return config


@pytest.mark.parametrize("command", ["validate", "run"])
def test_config_every_problem_reported_at_once_with_its_line(tmp_path: Path,
                                                            command: str) -> None:
    """validate and run report every config problem in one run, each `PATH:LINE: field:`,
    and exit 2 without a traceback (validate used to pass this config; run to crash)."""
    config = _bad_config(tmp_path)
    done = run_cli(command, "-c", str(config), timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for expected in (f"{config}:4: sources[0].type: unknown type 'sqss'",
                     f"{config}:5: sources[1]: missing paths",
                     f"{config}:6: sources[1].pathz: unknown key",
                     f"{config}:7: sources[2].max_messages: expected a whole number",
                     f"{config}:9: server.grace_period: expected a duration",
                     f"{config}:11: outputs.s: missing topic_arn"):
        assert expected in done.stderr, done.stderr
    assert "6 config errors" in done.stderr


@pytest.mark.parametrize("server, message", [
    ("{grace_period: soon}", "server.grace_period: expected a duration"),
    ("{listen: '127.0.0.1:http'}", "server.listen: expected HOST:PORT"),
    ("{listen: 127.0.0.1:0, grace: 1s}", "server.grace: unknown key"),
    ("[127.0.0.1:0]", "server: expected a mapping"),
])
def test_run_bad_server_section_is_a_config_error(tmp_path: Path, server: str,
                                                  message: str) -> None:
    """Each bad `server:` value alone: exit 2 with the line, no traceback."""
    (tmp_path / "token.yml").write_text(RULE)
    config = tmp_path / "trailguard.yml"
    config.write_text(f"rules: [token.yml]\nsources: [{{type: files, paths: [ev/]}}]\n"
                      f"server: {server}\n")
    done = run_cli("run", "-c", str(config), "--state", "memory://", timeout=60)
    assert (done.returncode, "Traceback" in done.stderr) == (2, False), done.stderr
    assert f"{config}:3: {message}" in done.stderr


def test_run_null_settings_take_their_defaults(tmp_path: Path) -> None:
    """`grace_period: null` is absent, as the config check says, not a crash at start."""
    (tmp_path / "token.yml").write_text(RULE)
    config = tmp_path / "trailguard.yml"
    config.write_text("rules: [token.yml]\nsources: [{type: stdin, name: null}]\n"
                      "server: {grace_period: null, listen: null}\n")
    done = run_cli("run", "-c", str(config), "--state", "memory://", "--listen", "127.0.0.1:0",
                   stdin=json.dumps(record()).encode(), timeout=60)
    assert (done.returncode, "Traceback" in done.stderr) == (0, False), done.stderr
    assert "trailguard stopped" in done.stderr


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_run_state_directory_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    """A SQLite state whose directory cannot be created: exit 2 naming the state line (it
    was a FileNotFoundError traceback)."""
    (tmp_path / "token.yml").write_text(RULE)
    config = tmp_path / "trailguard.yml"
    config.write_text("rules: [token.yml]\nsources: [{type: stdin}]\n"
                      "state: 'sqlite:////proc/no-such-dir/state.db'\n")
    done = run_cli("run", "-c", str(config), "--listen", "127.0.0.1:0", timeout=60)
    assert (done.returncode, "Traceback" in done.stderr) == (2, False), done.stderr
    assert f"{config}:3: state sqlite:////proc/no-such-dir/state.db" in done.stderr


def test_run_listen_address_in_use_is_a_config_error(tmp_path: Path) -> None:
    """A port another process holds is reported as the server.listen problem it is."""
    (tmp_path / "token.yml").write_text(RULE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "trailguard.yml"
        config.write_text(f"rules: [token.yml]\nsources: [{{type: files, paths: [ev/]}}]\n"
                          f"server: {{listen: '127.0.0.1:{port}'}}\n")
        done = run_cli("run", "-c", str(config), "--state", "memory://", timeout=60)
    assert (done.returncode, "Traceback" in done.stderr) == (2, False), done.stderr
    assert f"{config}:3: server.listen: cannot listen on 127.0.0.1:{port}" in done.stderr


# --- §9: no secret printed -------------------------------------------------------------

def test_config_error_never_echoes_a_token(tmp_path: Path) -> None:
    """A token put in the wrong field, literally or through ${VAR}, is not echoed back."""
    (tmp_path / "token.yml").write_text(RULE)
    config = tmp_path / "trailguard.yml"
    config.write_text(f"rules: [token.yml]\nstate: '{TOKEN}'\n"
                      "allowed_lateness: '${SLACK_BOT_TOKEN}'\n"
                      "sources: [{type: files, paths: [ev/]}]\n"
                      "server: {grace_period: '${SLACK_BOT_TOKEN}'}\n")
    for command in ("validate", "run"):
        done = run_cli(command, "-c", str(config), env={"SLACK_BOT_TOKEN": TOKEN + "-env"})
        assert done.returncode == 2, done.stderr
        assert f"{config}:2: state: unsupported URL" in done.stderr
        assert f"{config}:5: server.grace_period" in done.stderr
        assert "SECRET" not in done.stderr and "xoxb-1111" not in done.stderr


def test_state_error_never_shows_the_redis_password(tmp_path: Path) -> None:
    """A StateError (message, str, traceback text) and scan's report of an unreachable
    store carry the URL without its password."""
    url = f"redis://:{PASSWORD}@127.0.0.1:{_free_port()}/0"
    with pytest.raises(StateError) as caught:
        open_store(url)
    assert PASSWORD not in str(caught.value) and "127.0.0.1" in str(caught.value)
    events = tmp_path / "events.json"
    events.write_text(json.dumps(record()))
    (tmp_path / "token.yml").write_text(RULE)
    done = run_cli("scan", "-r", str(tmp_path / "token.yml"), "--state", url, str(events))
    assert done.returncode == 2 and "config error" in done.stderr  # cannot even start
    assert PASSWORD not in done.stderr and "[redacted]" in done.stderr


def test_daemon_with_its_store_down_shows_no_password_and_stops_cleanly(
        tmp_path: Path, private_redis: PrivateRedis) -> None:
    """Redis (with a password) dies under a running daemon: /readyz says so without the
    password, so do the logs; SIGTERM then ends it cleanly: exit 0, no traceback."""
    (tmp_path / "token.yml").write_text(RULE)
    (tmp_path / "events").mkdir()
    config = tmp_path / "trailguard.yml"
    config.write_text(
        f"rules: [token.yml]\nstate: '{private_redis.url}'\n"
        "sources: [{type: files, paths: [events/]}]\n"
        f"outputs: {{out: {{type: file, path: {tmp_path / 'alerts.jsonl'}}}}}\n"
        "routes: [{outputs: [out]}]\nserver: {listen: '127.0.0.1:0', grace_period: 5s}\n")
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        (tmp_path / "events" / "one.json").write_text(json.dumps(record()))
        assert wait_until(lambda: (tmp_path / "alerts.jsonl").exists())
        assert daemon.get("/readyz") == (200, "ready\n")
        private_redis.kill()
        status, body = daemon.get("/readyz")
        assert status == 503 and "state store" in body
        assert PASSWORD not in body and "[redacted]" in body
        assert wait_until(lambda: "failed" in daemon.text())  # the poller or housekeeping
    finally:
        code = daemon.stop()
    log = daemon.text()
    assert code == 0, log
    # no uncaught traceback (a JSON log line may carry one of a worker's, redacted)
    assert not any(line.startswith("Traceback") for line in log.splitlines()), log
    assert PASSWORD not in log


# --- §11: exit statuses ----------------------------------------------------------------

def test_scan_truncated_gzip_exits_1_naming_the_file(tmp_path: Path) -> None:
    """A gzip cut short is input not fully readable: exit 1 (it was 0), the file named."""
    body = gzip.compress(json.dumps({"Records": [record() for _ in range(50)]}).encode())
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(body[: len(body) // 2])
    (tmp_path / "token.yml").write_text(RULE)
    done = run_cli("scan", "-r", str(tmp_path / "token.yml"), str(cut))
    assert done.returncode == 1, done.stderr
    assert str(cut) in done.stderr and "Traceback" not in done.stderr


def test_scan_store_lost_midway_is_not_a_config_error(tmp_path: Path,
                                                      private_redis: PrivateRedis) -> None:
    """Redis killed while scan reads stdin: 'state store unavailable', exit 1 (it was
    'config error', 2), no password, no traceback."""
    (tmp_path / "token.yml").write_text(RULE)
    before = private_redis.clients()
    scan = subprocess.Popen(
        [sys.executable, "-m", "engine", "scan", "-r", str(tmp_path / "token.yml"),
         "--state", private_redis.url, "-"], cwd=REPO, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_until(lambda: private_redis.clients() > before)  # the store is open
    private_redis.kill()
    _, err = scan.communicate(b"\n".join(json.dumps(record()).encode() for _ in range(5)),
                              timeout=60)
    stderr = err.decode()
    assert scan.returncode == 1, stderr
    assert "state store unavailable" in stderr and "config error" not in stderr
    assert PASSWORD not in stderr and "Traceback" not in stderr


# --- §8: bounded work ------------------------------------------------------------------

def _malformed(daemon: Daemon) -> dict[str, float]:
    _, text = daemon.get("/metrics")
    return {found.group(1): float(found.group(2)) for found in
            re.finditer(r'^trailguard_malformed_total\{source="([^"]*)"\} (\S+)$', text, re.M)}


def test_files_source_dead_letters_a_bad_file_once_until_it_changes(tmp_path: Path) -> None:
    """A file that cannot be decoded is reported once, not at every poll; it is read again
    when it changes; the metric is labelled `files`, not with the file's path."""
    (tmp_path / "token.yml").write_text(RULE)
    (tmp_path / "events").mkdir()
    bad = tmp_path / "events" / "bad.jsonl"
    bad.write_text('{"not": "a record"}\n{"hello": 1}\n"text"\n')
    config = tmp_path / "trailguard.yml"
    config.write_text("rules: [token.yml]\nstate: memory://\n"
                      "sources: [{type: files, paths: [events/]}]\n"
                      "server: {listen: '127.0.0.1:0'}\n")
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        assert wait_until(lambda: _malformed(daemon).get("files") == 3)
        time.sleep(1.0)  # the source polls every second when idle:
        time.sleep(1.0)  # three more polls at least
        time.sleep(1.0)
        assert _malformed(daemon) == {"files": 3}
        assert daemon.text().count('"dead-lettered') == 3
        with bad.open("a") as more:
            more.write('{"x": 1}\n')
        assert wait_until(lambda: _malformed(daemon).get("files") == 7)
    finally:
        assert daemon.stop() == 0


def test_dead_letter_log_of_one_file_is_bounded(tmp_path: Path) -> None:
    """A small gzip of many bad lines: the first 20 are logged, the rest counted in one line
    (a 4 KB gzip of 2M lines wrote 517 MB of log); the metric counts all of them."""
    (tmp_path / "token.yml").write_text(RULE)
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "bomb.jsonl.gz").write_bytes(gzip.compress(b"1\n" * 5000))
    config = tmp_path / "trailguard.yml"
    config.write_text("rules: [token.yml]\nstate: memory://\n"
                      "sources: [{type: files, paths: [events/]}]\n"
                      "server: {listen: '127.0.0.1:0'}\n")
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        assert wait_until(lambda: _malformed(daemon).get("files") == 5000)
        assert wait_until(lambda: '"count":4980' in daemon.text())
    finally:
        assert daemon.stop() == 0
    assert daemon.text().count('"dead-lettered: ') == 20


def test_health_server_idle_connections_hold_no_threads() -> None:
    """800 idle connections: the thread count stays bounded, /healthz answers promptly
    (http.server's threading server held one thread per connection)."""
    from prometheus_client import CollectorRegistry

    server = serve("127.0.0.1:0", CollectorRegistry(), lambda: [], lambda: True)
    port = server.server_address[1]
    before = threading.active_count()
    idle = []
    try:
        for _ in range(800):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.read() == b"ok\n"
        assert time.monotonic() - started < 2.0
        assert threading.active_count() <= before + 2
    finally:
        for conn in idle:
            conn.close()
        server.shutdown()


# --- property: loading any config either succeeds or raises ConfigError ------------------

def _values() -> object:
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(-1, 1e6),
                        st.sampled_from(["", "30s", "soon", "0", "-1m", "127.0.0.1:0", ":x",
                                         "files", "stdin", "sqs", "s3", "q", "http://h",
                                         "${NOPE}", "a:b:c"]))
    keys = st.sampled_from(["type", "paths", "name", "queue_url", "bucket", "prefix",
                            "region", "endpoint_url", "visibility_timeout", "max_messages",
                            "wait_seconds", "poll_interval", "listen", "grace_period", "x"])
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)), max_leaves=8)


def test_config_load_raises_only_config_errors(tmp_path: Path) -> None:
    """Whatever `sources:` and `server:` hold, loading gives a Config or a ConfigError whose
    every problem names the file and a line: never another exception."""
    import yaml
    from hypothesis import example, given, settings

    from engine.config import load_config
    from engine.errors import ConfigError

    path = tmp_path / "trailguard.yml"

    @settings(max_examples=150, deadline=None, database=None)
    @given(sources=_values(), server=_values())
    @example(sources=None, server="soon")  # was a ValueError from dict()
    @example(sources=[{"type": "files", "paths": 3}], server=None)
    def check(sources: object, server: object) -> None:
        path.write_text(yaml.safe_dump({"sources": sources, "server": server}))
        try:
            config = load_config(path, environ={})
        except ConfigError as exc:
            problems = str(exc).splitlines()
            assert all(p.startswith(f"{path}:") for p in problems), problems
            return
        assert all(s["type"] in ("files", "stdin", "sqs", "s3") for s in config.sources)

    check()
