"""docs/state.md, sentence by sentence: `test_sNN_...` checks sentence SNN.

Scenarios are timelines in minutes after 2024-03-04T10:00Z (tests/support/state.py). Unless a
test says otherwise the lateness is 15 minutes and the store is memory://.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from freezegun import freeze_time

from engine.inputs.eventtime import event_epoch, iso
from engine.model import alert_id_for
from engine.scan.pipeline import ScanStats, run_scan
from engine.state import open_store
from engine.state.windows import MAX_IDS
from tests.support.redis import empty_redis
from tests.support.state import (
    at,
    copies,
    decider_for,
    evaluator,
    feed,
    make_rule,
    read,
    scan,
    views,
)

ALICE = "arn:aws:sts::123456789012:assumed-role/Developer/alice"
BOB = "arn:aws:sts::123456789012:assumed-role/Developer/bob"
PLAIN = make_rule("plain")
DEDUP = make_rule("dedup", dedup="1h")
THRESHOLD = make_rule("burst", threshold=(3, "10m"))
NEW_IP = make_rule("new-ip", first_seen=("sourceIPAddress", "90d", ""))


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from empty_redis()


def _epoch(minutes: float) -> float:
    epoch = event_epoch({"eventTime": at(minutes)})
    assert epoch is not None
    return epoch


# --- repeats and copies ---

def test_s01_exact_repeat_is_dropped_before_evaluation() -> None:
    """A repeated eventID is a duplicate: not an event, not a match, no count."""
    first = read(0)
    engine = evaluator([DEDUP])
    alerts: list = []
    from engine.decide.decider import new_decider

    stats = run_scan([first, copy.deepcopy(first), read(1)], engine, new_decider(engine, 900),
                     alerts.append)
    assert (stats.events, stats.duplicates, engine.matches["dedup"]) == (2, 1, 2)
    assert [a.event_count for a in alerts] == [2]


def test_s02_persistent_store_remembers_event_ids_across_runs(tmp_path: Path) -> None:
    """A second scan of the same input over the same SQLite store yields no alert."""
    records = [read(0), *copies(1), read(2, who="bob")]
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url) as store:
        assert len(scan([PLAIN, DEDUP], records, store=store)) == 5
    with open_store(url) as store:
        assert scan([PLAIN, DEDUP], copy.deepcopy(records), store=store) == []


def test_s03_event_ids_are_remembered_for_a_horizon_of_event_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Within the horizon a repeat is dropped; well past it (1h in memory) it is evaluated."""
    # claim each record after the one before it
    monkeypatch.setattr("engine.scan.pipeline.BATCH", 1)
    first = read(0)
    repeat_soon, repeat_late = copy.deepcopy(first), copy.deepcopy(first)
    alerts = scan([PLAIN], [first, read(30), repeat_soon, read(200), repeat_late])
    assert [a.event_ids[0] for a in alerts].count(first["eventID"]) == 2
    assert open_store("memory://?event_ids=3d").event_id_horizon == 3 * 86400
    assert open_store("memory://").event_id_horizon == 3600
    assert open_store("sqlite:///:memory:").event_id_horizon == 86400


def test_s34_a_backfilled_record_is_remembered_from_its_arrival(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Old records read after newer ones (past the 1h horizon by their own eventTime) are
    still recognised when repeated later in the same backfill."""
    monkeypatch.setattr("engine.scan.pipeline.BATCH", 1)
    old = read(0)
    records = [read(600), read(601, who="bob"), old, read(602), copy.deepcopy(old),
               read(630), copy.deepcopy(old)]
    alerts = scan([PLAIN], records)
    assert [a.event_ids[0] for a in alerts].count(old["eventID"]) == 1
    # a horizon past the newest eventTime before it, it is forgotten like any other
    later = scan([PLAIN], [read(600), old, read(700), read(800), read(900), copy.deepcopy(old)])
    assert [a.event_ids[0] for a in later].count(old["eventID"]) == 2


def test_s04_copies_make_one_alert_listing_every_copy() -> None:
    """Three copies arriving out of order, among other records, make one alert with all ids."""
    trio = copies(0)
    records = [trio[2], read(0.5, who="bob"), trio[0], read(1, who="bob"), trio[1]]
    alerts = [a for a in scan([PLAIN], records) if a.group_key == ALICE]
    assert len(alerts) == 1
    assert sorted(alerts[0].event_ids) == sorted(r["eventID"] for r in trio)
    assert sorted(alerts[0].account_ids) == ["111111111111", "222222222222", "333333333333"]
    assert alerts[0].event_count == 1


def test_s05_copies_count_once_in_counts_thresholds_and_first_seen() -> None:
    """Two calls of three copies: event_count 2, no threshold of 3, one new-IP alert."""
    records = copies(0) + copies(1)
    dedup, = scan([DEDUP], records)
    assert (dedup.event_count, len(dedup.event_ids)) == (2, 6)
    assert scan([THRESHOLD], copy.deepcopy(records)) == []
    burst, = scan([THRESHOLD], copies(0) + copies(1) + copies(2))
    assert (burst.event_count, len(burst.event_ids)) == (3, 9)
    first, = scan([NEW_IP], copies(0, ip="203.0.113.9") + copies(1, ip="203.0.113.9"))
    assert (first.event_count, len(first.event_ids)) == (1, 3)


# --- plain rules ---

def test_s06_plain_rule_alerts_once_per_call() -> None:
    """Three calls make three alerts; copies of one call make one."""
    alerts = scan([PLAIN], [read(0), read(0), *copies(1), read(2)])
    assert [a.event_count for a in alerts] == [1, 1, 1, 1]
    assert len({a.alert_id for a in alerts}) == 4


# --- dedup ---

def test_s07_first_match_opens_a_window_anchored_at_its_event_time() -> None:
    """The earliest match is the anchor, even when it arrives second."""
    alert, = scan([DEDUP], [read(5), read(0)])
    assert alert.first_event_time == at(0)
    assert alert.alert_id == alert_id_for("dedup", ALICE, iso(_epoch(0)))


def test_s08_matches_within_the_window_fold_into_the_alert() -> None:
    """Matches in [t0, t0 + 1h) raise the count, add their ids and widen the times."""
    records = [read(0), read(20), read(59)]
    alert, = scan([DEDUP], records)
    assert alert.event_count == 3
    assert alert.event_ids == [r["eventID"] for r in records]
    assert (alert.first_event_time, alert.last_event_time) == (at(0), at(59))


def test_s09_first_match_after_the_window_opens_a_new_alert() -> None:
    """At exactly t0 + dedup a new window starts, anchored at that match."""
    alerts = scan([DEDUP], [read(0), read(59.99), read(60), read(100)])
    assert [(a.first_event_time, a.event_count) for a in alerts] == [(at(0), 2), (at(60), 2)]


def test_s10_late_match_before_the_anchor_folds_into_that_window() -> None:
    """A late match 50 min before the anchor folds in; 70 min before, it opens its own."""
    alerts = scan([DEDUP], [read(100), read(200, who="bob"), read(50), read(30)])
    alice = [a for a in alerts if a.group_key == ALICE]
    assert [(a.alert_id == alice[0].alert_id, a.event_count, a.update) for a in alice] == [
        (True, 1, False), (True, 2, True), (False, 1, False)]
    assert alice[1].first_event_time == at(50)


# --- threshold ---

def test_s11_threshold_alerts_when_count_matches_fall_within_the_window() -> None:
    """0, 4 and 9.9 minutes: three within ten minutes, one alert from the first of them."""
    alert, = scan([THRESHOLD], [read(0), read(4), read(9.9)])
    assert (alert.event_count, alert.first_event_time, alert.last_event_time) == (
        3, at(0), at(9.9))
    assert alert.alert_id == alert_id_for("burst", ALICE, iso(_epoch(0)))


def test_s12_quiet_period_folds_matches_into_the_alert() -> None:
    """After firing at 9, matches until 19 fold in; with dedup 30m, until 39."""
    alert, = scan([THRESHOLD], [read(0), read(4), read(9), read(12), read(18.9)])
    assert alert.event_count == 5
    slow = make_rule("slow", threshold=(3, "10m"), dedup="30m")
    alert, = scan([slow], [read(0), read(4), read(9), read(30), read(38.9)])
    assert alert.event_count == 5


def test_s13_counting_starts_from_zero_after_the_quiet_period() -> None:
    """Matches before the alert never count again: 20 and 25 are two, 26 makes three."""
    records = [read(0), read(4), read(9), read(15), read(20), read(25)]
    assert len(scan([THRESHOLD], copy.deepcopy(records))) == 1
    alerts = scan([THRESHOLD], [*records, read(26)])
    assert [(a.first_event_time, a.event_count) for a in alerts] == [(at(0), 4), (at(20), 3)]


def test_s14_no_window_long_span_with_count_matches_means_no_alert() -> None:
    """0, 5, 10, 20, 30 never puts three in less than ten minutes; three people neither."""
    assert scan([THRESHOLD], [read(0), read(5), read(10), read(20), read(30)]) == []
    assert scan([THRESHOLD], [read(0), read(1, who="bob"), read(2, who="carol")]) == []


# --- first_seen ---

def test_s15_first_seen_alerts_only_on_a_value_new_for_the_group() -> None:
    """alice from A, A again, B; bob from A: three new (group, value) pairs."""
    alerts = scan([NEW_IP], [read(0, ip="192.0.2.1"), read(10, ip="192.0.2.1"),
                             read(20, ip="192.0.2.2"), read(30, who="bob", ip="192.0.2.1")])
    assert [(a.group_key, a.event["sourceIPAddress"]) for a in alerts] == [
        (ALICE, "192.0.2.1"), (ALICE, "192.0.2.2"), (BOB, "192.0.2.1")]


def test_s16_learning_records_without_alerting_from_the_rules_first_match() -> None:
    """Learning 1h from the first match (at 100): values seen then are known afterwards."""
    rule = make_rule("learner", first_seen=("sourceIPAddress", "90d", "1h"))
    records = [read(100, ip="192.0.2.1"), read(150, ip="192.0.2.2"),
               read(170, ip="192.0.2.2"), read(171, ip="192.0.2.3")]
    alert, = scan([rule], records)
    assert alert.event["sourceIPAddress"] == "192.0.2.3"


def test_s17_a_value_unseen_for_remember_is_new_again() -> None:
    """remember 1h: seen at 0 and 59, it is new again at 119 (60 minutes after 59)."""
    rule = make_rule("short", first_seen=("sourceIPAddress", "1h", ""))
    alerts = scan([rule], [read(0), read(59), read(118.9), read(178.8)])
    assert [a.first_event_time for a in alerts] == [at(0)]
    alerts = scan([rule], [read(0), read(59), read(119)])
    assert [a.first_event_time for a in alerts] == [at(0), at(119)]


def test_s18_null_or_failing_value_never_alerts() -> None:
    """A value that is null, or whose expression fails, is no new value."""
    missing = make_rule("missing", first_seen=("requestParameters.noSuchField", "90d", ""))
    failing = make_rule("failing", first_seen=("length(requestParameters.noSuchField)", "90d",
                                               ""))
    assert scan([missing, failing], [read(0), read(1)]) == []


def test_s19_new_values_follow_dedup_when_the_rule_has_one() -> None:
    """Two new IPs within an hour: one alert with dedup 1h, two without."""
    records = [read(0, ip="192.0.2.1"), read(10, ip="192.0.2.2")]
    folded = make_rule("folded", first_seen=("sourceIPAddress", "90d", ""), dedup="1h")
    alert, = scan([folded], records)
    assert alert.event_count == 2
    assert len(scan([NEW_IP], copy.deepcopy(records))) == 2


# --- alert ids ---

def test_s20_alert_ids_depend_on_rule_group_and_anchor_only(tmp_path: Path) -> None:
    """The same scenario in two stores gives the same ids; ids follow the documented anchors."""
    trio = copies(3)
    records = [read(0), read(1), *trio]
    first = scan([PLAIN, DEDUP], copy.deepcopy(records))
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        second = scan([PLAIN, DEDUP], copy.deepcopy(records), store=store)
    assert views(first) == views(second)
    ids = {a.alert_id for a in first}
    assert alert_id_for("dedup", ALICE, iso(_epoch(0))) in ids
    assert alert_id_for("plain", ALICE, records[0]["eventID"]) in ids
    assert alert_id_for("plain", ALICE, trio[0]["sharedEventID"]) in ids


# --- order and lateness ---

def test_s21_scan_alerts_do_not_depend_on_arrival_order_within_lateness() -> None:
    """A timeline reversed in 10-minute blocks (under 15m lateness) gives the same alerts."""
    timeline = [read(m, ip=f"192.0.2.{m % 3}") for m in range(0, 90, 2)] + copies(7) + copies(41)
    timeline.sort(key=lambda r: r["eventTime"])
    blocks = [timeline[i:i + 5] for i in range(0, len(timeline), 5)]
    shuffled = [r for block in blocks for r in reversed(block)]
    rules = [PLAIN, DEDUP, THRESHOLD, NEW_IP, make_rule("d10", dedup="10m")]
    assert views(scan(rules, copy.deepcopy(timeline))) == views(scan(rules, shuffled))


def test_s22_late_record_is_evaluated_counted_late_and_folded_or_counted() -> None:
    """alice 100, 105; bob 150; alice 102 arrives late and still completes her threshold."""
    engine = evaluator([THRESHOLD])
    alerts: list = []
    from engine.decide.decider import new_decider

    records = [read(100), read(105), read(150, who="bob"), read(102)]
    stats = run_scan(records, engine, new_decider(engine, 900), alerts.append, stats=ScanStats())
    assert stats.late == 1
    assert [(a.group_key, a.event_count, a.first_event_time) for a in alerts] == [
        (ALICE, 3, at(100))]


def test_s23_only_detected_at_reads_the_wall_clock() -> None:
    """Scanned in 1999 or in 2031, slowly or at once: the same alerts but for detected_at."""
    records = [read(0), read(4), read(9.9), *copies(12), read(30, ip="192.0.2.9")]
    rules = [PLAIN, DEDUP, THRESHOLD, NEW_IP]
    with freeze_time("1999-12-31T23:59:59Z"):
        old = scan(rules, copy.deepcopy(records))
    with freeze_time("2031-06-01T12:00:00Z", auto_tick_seconds=3600):
        new = scan(rules, copy.deepcopy(records))
    assert views(old) == views(new)
    assert {a.detected_at for a in old} == {"1999-12-31T23:59:59Z"}


# --- emission ---

def test_s24_scan_writes_an_alert_when_the_watermark_passes_its_end_by_the_lateness() -> None:
    """dedup 10m, lateness 5m: written at the first record after 15m, with what folded in."""
    engine, decider = decider_for([make_rule("d", dedup="10m")], lateness=300)
    assert feed(engine, decider, read(0)) == []
    assert feed(engine, decider, read(9)) == []
    assert feed(engine, decider, read(15, who="bob")) == []
    written = feed(engine, decider, read(15.01, who="carol", eventSource="s3.amazonaws.com"))
    assert [(a.group_key, a.event_count) for a in written] == [(ALICE, 2)]
    assert [a.group_key for a in decider.flush()] == [BOB]


def test_s25_late_fold_into_a_written_alert_writes_it_again_as_an_update() -> None:
    """A late match inside a written window: the same alert_id again, update, count 2."""
    alerts = scan([DEDUP], [read(0), read(100, who="bob"), read(30)])
    alice = [a for a in alerts if a.group_key == ALICE]
    assert [(a.event_count, a.update) for a in alice] == [(1, False), (2, True)]
    assert alice[0].alert_id == alice[1].alert_id
    assert alice[1].to_dict()["update"] is True


def test_s26_next_scan_continues_windows_counts_and_first_seen(tmp_path: Path) -> None:
    """Day two folds into day one's open windows, completes a count, remembers the IPs."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    learner = make_rule("learner", first_seen=("sourceIPAddress", "90d", "1h"))
    rules = [DEDUP, THRESHOLD, learner]
    day_one = [read(0, ip="192.0.2.1"), read(196, who="bob"), read(197, who="bob"),
               read(200, who="carol")]
    day_two = [read(204, who="bob"), read(210, who="carol"), read(230, ip="192.0.2.1"),
               read(231, who="dave", ip="192.0.2.1"), read(232, ip="192.0.2.77")]
    with open_store(url) as store:
        first = scan(rules, day_one, store=store)
    with open_store(url) as store:
        second = scan(rules, day_two, store=store)
    def summary(alerts: list) -> list[tuple]:
        return sorted((a.rule.id, a.group_key.rsplit("/", 1)[1], a.event_count, a.update)
                      for a in alerts)

    assert summary(first) == [("dedup", "alice", 1, False), ("dedup", "bob", 2, False),
                              ("dedup", "carol", 1, False), ("learner", "bob", 1, False),
                              ("learner", "carol", 1, False)]
    assert summary(second) == [("burst", "bob", 3, False), ("dedup", "alice", 2, False),
                               ("dedup", "bob", 3, True), ("dedup", "carol", 2, True),
                               ("dedup", "dave", 1, False), ("learner", "alice", 1, False),
                               ("learner", "dave", 1, False)]


def test_s27_live_alerts_at_the_opening_match_and_at_the_threshold() -> None:
    """The offer that opens a dedup window or completes a threshold returns the alert."""
    engine, decider = decider_for([DEDUP, THRESHOLD], mode="live")
    opened = feed(engine, decider, read(0))
    assert [(a.rule.id, a.event_count, a.update) for a in opened] == [("dedup", 1, False)]
    assert feed(engine, decider, read(1)) == []
    crossed = feed(engine, decider, read(2))
    assert [(a.rule.id, a.event_count, a.update) for a in crossed] == [("burst", 3, False)]


def test_s28_live_folds_come_back_from_flush_as_one_update_per_alert() -> None:
    """Three folds after the opening: one update with the cumulative count, then nothing."""
    engine, decider = decider_for([DEDUP], mode="live")
    opening, = feed(engine, decider, read(0))
    for minute in (1, 2, 3):
        assert feed(engine, decider, read(minute)) == []
    update, = decider.flush()
    assert (update.alert_id, update.event_count, update.update) == (opening.alert_id, 4, True)
    assert decider.flush() == []


def test_s33_live_windows_keep_the_anchor_they_were_sent_with() -> None:
    """dedup 10m, arrivals 5, 12, 0: live makes one alert of three; scan (sorted) two."""
    rule = make_rule("d10", dedup="10m")
    engine, decider = decider_for([rule], mode="live")
    opened = [a for m in (5, 12, 0) for a in feed(engine, decider, read(m))]
    update, = decider.flush()
    assert [(a.first_event_time, a.event_count) for a in opened] == [(at(5), 1)]
    assert (update.first_event_time, update.event_count) == (at(0), 3)
    assert [a.event_count for a in scan([rule], [read(5), read(12), read(0)])] == [2, 1]


def test_s29_two_deciders_on_one_redis_make_one_alert_and_one_count(redis_url: str) -> None:
    """Two live deciders take turns on one group: one alert, and every match counted once."""
    stores = [open_store(redis_url), open_store(redis_url)]
    pairs = [decider_for([THRESHOLD], mode="live", store=s) for s in stores]
    records = [read(minute / 10) for minute in range(10)]
    opened = [a for i, r in enumerate(records) for a in feed(*pairs[i % 2], r)]
    updates = [a for engine, decider in pairs for a in decider.flush()]
    assert [(a.event_count, a.update) for a in opened] == [(3, False)]
    assert max(a.event_count for a in updates) == 10
    assert {a.alert_id for a in updates} == {opened[0].alert_id}


# --- memory bounds ---

def test_s30_every_value_expires_on_event_time() -> None:
    """Expiries: window end + L + 1h, pending + window + L + 1h, first-seen last + remember."""
    store = open_store("memory://")
    trio = copies(5)
    scan([DEDUP, THRESHOLD, NEW_IP, PLAIN], [read(0, who="bob"), read(1), *trio], store=store)
    keep = 900 + 3600
    values = store._values  # type: ignore[attr-defined]
    dedup = values[f"w\x1fdedup\x1f{ALICE}"]
    assert dedup["X"] == _epoch(1) + 3600 + keep
    pending = values[f"w\x1fburst\x1f{ALICE}"]
    assert pending["X"] == _epoch(5) + 600 + keep
    assert values[f"f\x1fnew-ip\x1f{BOB}\x1f198.51.100.7"]["X"] == _epoch(0) + 90 * 86400
    assert values[f"c\x1fplain\x1f{trio[0]['sharedEventID']}"]["X"] == _epoch(5) + keep


def test_s31_purge_follows_the_watermark_never_the_wall_clock() -> None:
    """Days of wall clock purge nothing; moving the watermark past the expiry purges."""
    store = open_store("memory://")
    with freeze_time("2024-03-04T10:00:00Z") as clock:
        scan([DEDUP], [read(0)], store=store)
        clock.tick(30 * 86400)
        store.advance(store.watermark + 1)
        assert store.stats()["keys"] == 1
    store.advance(_epoch(0) + 3600 + 900 + 3600 + 601)
    assert store.stats() == {"event_ids": 0, "keys": 0, "bytes": 0}


def test_s32_event_ids_are_capped_and_event_count_is_exact() -> None:
    """150 folds: event_count 150, the first 100 event ids listed."""
    records = [read(minute / 10) for minute in range(150)]
    alert, = scan([DEDUP], records)
    assert alert.event_count == 150
    assert alert.event_ids == [r["eventID"] for r in records[:MAX_IDS]]


@pytest.mark.parametrize("mode", ["scan", "live"])
def test_decider_rejects_an_unknown_mode_and_accepts_both(mode: str) -> None:
    """`mode` is scan or live; anything else is a programming error."""
    decider_for([PLAIN], mode=mode)
    with pytest.raises(ValueError, match="mode"):
        decider_for([PLAIN], mode="batch")
