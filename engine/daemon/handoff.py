"""How a daemon batch's alerts reach the outbox so that `kill -9` at any moment loses none.

The runner decides a source message, then commits the state and acknowledges the message.
Whatever the moment of a crash, the alerts the message raised must end up in the outbox
exactly once, and its eventIDs must be claimed only if they do:

- `DirectHandoff` (memory://, SQLite): each alert is put in the outbox as it is raised, and
  the store commits afterwards. SQLite holds the claims and windows until that commit and
  shares its file with the outbox, so a crash before the commit leaves the message to be
  decided again, and its alerts (same ids) merge into the entries already there.
- `JournalHandoff` (Redis, engine.state.redisbatch): alerts are collected; at the end the
  store commits the batch's claims, window changes and alerts (a journal) in one script,
  then each journal field is moved into the outbox with `put(settle=...)`, exactly once,
  and the workers are told. A journal left by a process that died after its commit is
  replayed by `recover()`, which the runner calls before its first message and then with
  its housekeeping. A commit that raced another daemon raises `Conflict`: nothing of the
  batch was written, and the runner decides the message again.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from engine.model import Alert
from engine.outputs.outbox import owner_is_gone
from engine.state import StateStore
from engine.state.redisbatch import abandoned, journal_fields

log = logging.getLogger(__name__)


class DirectHandoff:
    """Alerts go to the outbox at once; the store commits after them."""

    def __init__(self, store: StateStore, dispatcher: Any) -> None:
        self.store, self.dispatcher = store, dispatcher

    def emit(self, alert: Alert) -> None:
        self.dispatcher.send(alert)  # durable in the outbox when this returns

    def commit(self) -> None:
        self.store.commit()

    def abort(self) -> None:
        """Nothing to undo: what was put in the outbox is merged into when decided again."""

    def recover(self) -> int:
        return 0


class JournalHandoff:
    """Alerts are committed with the batch's state, then moved into the outbox."""

    def __init__(self, store: Any, dispatcher: Any) -> None:
        self.store, self.dispatcher = store, dispatcher
        self._alerts: list[Alert] = []

    def emit(self, alert: Alert) -> None:
        self._alerts.append(alert)

    def commit(self) -> None:
        """Commit the batch and its alerts at once (or raise Conflict), then hand them on."""
        items = [item for alert in self._alerts for item in self._routed(alert)]
        self._alerts = []
        if not items:
            self.store.commit()
            return
        key = self.store.journal_key(uuid.uuid4().hex)
        self.store.commit(journal_fields(self.dispatcher.owner, items, time.time()), key)
        self._settle(key, [(f"{n:06d}", output, doc) for n, (output, doc) in enumerate(items)])

    def abort(self) -> None:
        self._alerts = []
        self.store.rollback()

    def recover(self) -> int:
        """Move the alerts of journals whose owner is gone (or is this process) into the
        outbox; return how many journals were replayed."""
        replayed = 0
        for journal in self.store.journals():
            if abandoned(journal, self.dispatcher.owner, owner_is_gone):
                log.warning("replaying %d alerts committed by %s", len(journal.entries),
                            journal.owner or "an unknown process", extra={"count": len(
                                journal.entries)})
                self._settle(journal.key, journal.entries)
                replayed += 1
        return replayed

    def _settle(self, key: str, entries: list[tuple[str, str, dict[str, Any]]]) -> None:
        outbox, owner = self.dispatcher.store, self.dispatcher.owner
        for field, output, doc in entries:
            if outbox.put(output, doc, owner, settle=(key, field)):
                worker = self.dispatcher.workers.get(output)
                if worker is not None:
                    worker.submit(str(doc["alert_id"]))
        self.store.drop_journal(key)

    def _routed(self, alert: Alert) -> list[tuple[str, dict[str, Any]]]:
        """(output, document) for each output the alert goes to, as Dispatcher.send routes."""
        names = [n for n in self.dispatcher.router.route(alert.rule)
                 if n in self.dispatcher.workers]
        if not names:
            self.dispatcher.send(alert)  # nowhere to go: it counts and warns
            return []
        doc = alert.to_dict()
        return [(name, doc) for name in names]


def handoff_for(store: StateStore, dispatcher: Any) -> DirectHandoff | JournalHandoff:
    """The journal where the store keeps one (Redis in the daemon), else direct."""
    if hasattr(store, "journal_key") and not store.autocommit:
        return JournalHandoff(store, dispatcher)
    return DirectHandoff(store, dispatcher)
