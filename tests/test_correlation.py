"""SPEC §8 in `scan`: sequences, absent steps, absence and distinct counts (docs/state.md
S35-S46; `test_s35_...` tests S35)."""

from __future__ import annotations

import dataclasses

import hypothesis.strategies as st
from hypothesis import given, settings

from engine.durations import parse_duration
from engine.model import Step, Threshold
from engine.state import open_store
from tests.support.correlation import (
    PUBLISH,
    READ_IT,
    call,
    copies_of,
    publish_then_delete,
    published_not_deleted,
    sequence_rule,
    silence_rule,
)
from tests.support.state import ACCOUNTS, at, make_rule, read, scan, views


def test_s35_a_sequence_fires_on_the_event_that_completes_it() -> None:
    """Steps in eventTime order within `within`: one alert; its event completed the chain,
    its event_ids and steps are the chain's, in order."""
    first, last = call(0, "PublishPackageVersion"), call(10, "DeletePackageVersions")
    alerts = scan([publish_then_delete()], [first, call(5, "ListPackages"), last])
    assert len(alerts) == 1
    alert = alerts[0].to_dict()
    assert alert["event"]["eventID"] == last["eventID"]
    assert alert["event_ids"] == [first["eventID"], last["eventID"]]
    assert alert["event_count"] == 2
    assert (alert["first_event_time"], alert["last_event_time"]) == (at(0), at(10))
    assert alert["steps"] == [
        {"name": "published", "event_id": first["eventID"], "event_time": at(0)},
        {"name": "deleted", "event_id": last["eventID"], "event_time": at(10)}]


def test_s35_no_alert_out_of_order_too_slow_or_in_another_group() -> None:
    """Delete before publish, 16 minutes apart, or another package: nothing."""
    rule = publish_then_delete()
    assert scan([rule], [call(0, "DeletePackageVersions"), call(5, "PublishPackageVersion")]) == []
    assert scan([rule], [call(0, "PublishPackageVersion"), call(16, "DeletePackageVersions")]) == []
    assert scan([rule], [call(0, "PublishPackageVersion"),
                         call(5, "DeletePackageVersions", package="other")]) == []


def test_s35_equal_event_times_are_in_order() -> None:
    """Non-decreasing: a delete in the publish's second completes the chain."""
    alerts = scan([publish_then_delete()], [call(0, "PublishPackageVersion"),
                                            call(0, "DeletePackageVersions")])
    assert len(alerts) == 1


def test_s35_the_sequence_condition_filters_every_step() -> None:
    """`condition` beside `sequence` must hold for every step's event."""
    rule = publish_then_delete(condition="userIdentity.accountId == '123456789012'")
    stranger = call(5, "DeletePackageVersions", userIdentity__accountId="999999999999")
    assert scan([rule], [call(0, "PublishPackageVersion"), stranger]) == []
    assert len(scan([rule], [call(0, "PublishPackageVersion"),
                             call(6, "DeletePackageVersions")])) == 1


def test_s36_a_step_count_needs_that_many_distinct_calls() -> None:
    """count: 3 needs three calls; three copies of one call are one."""
    rule = sequence_rule([Step("opened", PUBLISH), Step("read", READ_IT, count=3)], "1h")
    opened = call(0, "PublishPackageVersion")
    one_call = copies_of(call(5, "ReadFromRepository"), ACCOUNTS)
    assert scan([rule], [opened, *one_call]) == []
    reads = [call(5 + n, "ReadFromRepository") for n in range(3)]
    alerts = scan([rule], [opened, *one_call, *reads])
    assert len(alerts) == 1
    assert [s["name"] for s in alerts[0].to_dict()["steps"]] == ["opened", "read", "read",
                                                                 "read"]
    assert alerts[0].event_count == 4
    assert set(alerts[0].event_ids) >= {r["eventID"] for r in one_call}


def test_s36_copies_of_a_chain_call_fold_into_its_alert() -> None:
    """Copies of the completing call are listed in the one alert, with their accounts."""
    delete = copies_of(call(3, "DeletePackageVersions"), ACCOUNTS)
    alerts = scan([publish_then_delete()], [call(0, "PublishPackageVersion"), *delete])
    assert len(alerts) == 1
    assert set(alerts[0].account_ids) == {*ACCOUNTS, "123456789012"}  # and the publish's
    assert alerts[0].event_count == 2
    assert {r["eventID"] for r in delete} <= set(alerts[0].event_ids)


def test_s37_each_event_is_used_by_one_chain_only() -> None:
    """Two publishes then one delete: one chain; a second delete needs a publish after the
    first delete."""
    rule = publish_then_delete()
    records = [call(0, "PublishPackageVersion"), call(1, "PublishPackageVersion"),
               call(2, "DeletePackageVersions"), call(3, "DeletePackageVersions")]
    alerts = scan([rule], records)
    assert len(alerts) == 1
    assert alerts[0].first_event_time == at(0)
    records.extend([call(4, "PublishPackageVersion"), call(5, "DeletePackageVersions")])
    assert [a.first_event_time for a in scan([rule], records)] == [at(0), at(4)]


def test_s38_a_chain_starts_at_its_earliest_first_step_that_fits() -> None:
    """A publish too early for the delete is skipped for a later one that fits."""
    alerts = scan([publish_then_delete()], [call(0, "PublishPackageVersion"),
                                            call(10, "PublishPackageVersion"),
                                            call(20, "DeletePackageVersions")])
    assert [a.first_event_time for a in alerts] == [at(10)]


def test_s39_an_absent_step_fires_at_the_deadline_with_the_first_event() -> None:
    """Published, not deleted within 1h: one alert once the watermark minus the lateness
    passes 1h; its event is the publish."""
    published = call(0, "PublishPackageVersion")
    alerts = scan([published_not_deleted()], [published, call(76, "ListPackages")])
    assert len(alerts) == 1
    assert alerts[0].event["eventID"] == published["eventID"]
    assert alerts[0].to_dict()["steps"] == [
        {"name": "published", "event_id": published["eventID"], "event_time": at(0)}]


def test_s39_the_absent_step_within_the_window_cancels() -> None:
    """A delete 59 minutes later (or in the same second) means no alert."""
    rule = published_not_deleted()
    for minutes in (0, 59, 60):
        assert scan([rule], [call(0, "PublishPackageVersion"),
                             call(minutes, "DeletePackageVersions"),
                             call(200, "ListPackages")]) == []
    assert len(scan([rule], [call(0, "PublishPackageVersion"),
                             call(61, "DeletePackageVersions"),
                             call(200, "ListPackages")])) == 1


def test_s40_absence_fires_once_per_gap() -> None:
    """A group seen, then silent for 2h: one alert whose last_event_time is its last match;
    again only after it matched again; a group never seen never alerts."""
    other = "999999999999"
    records = [read(0), read(30), read(200, recipientAccountId=other),
               read(210), read(500, recipientAccountId=other)]
    alerts = scan([silence_rule()], records)
    assert [(a.group_key, a.last_event_time) for a in alerts] == [
        ("123456789012", at(30)), (other, at(200)), ("123456789012", at(210))]
    assert alerts[0].event["eventID"] == records[1]["eventID"]


def test_s41_a_deadline_the_input_never_reaches_does_not_fire() -> None:
    """The clock is the newest eventTime minus the lateness, also at the end of the input."""
    assert scan([silence_rule()], [read(0), read(134)]) == []  # clock 119 < 120
    assert len(scan([silence_rule()], [read(0), read(136, recipientAccountId="9")])) == 1
    assert scan([published_not_deleted()], [call(0, "PublishPackageVersion"),
                                            call(74, "ListPackages")]) == []


def test_s42_distinct_counts_values_not_matches() -> None:
    """threshold.distinct: three reads of one repository are one value; three repositories
    (copies once, nulls never) reach a count of 3."""
    rule = dataclasses.replace(make_rule("enum"), threshold=Threshold(
        3, parse_duration("10m"), "requestParameters.repositoryName"))

    def repo(minutes: float, name: str | None) -> dict[str, object]:
        record = read(minutes)
        record["requestParameters"]["repositoryName"] = name
        return record

    assert scan([rule], [repo(0, "a"), repo(1, "a"), repo(2, "a"), repo(3, None),
                         repo(4, "b"), repo(5, None)]) == []
    alerts = scan([rule], [repo(0, "a"), repo(1, "a"), repo(2, "b"), repo(3, "c")])
    assert len(alerts) == 1
    assert alerts[0].event_count == 3  # the shortest span holding three values
    assert scan([rule], [repo(0, "a"), repo(4, "b"), repo(10, "c")]) == []  # not within 10m


def test_s43_sequence_alerts_fold_by_dedup() -> None:
    """With dedup: 1h, a second chain starting within the hour folds into the first alert."""
    rule = publish_then_delete(dedup="1h")
    records = [call(0, "PublishPackageVersion"), call(1, "DeletePackageVersions"),
               call(20, "PublishPackageVersion"), call(21, "DeletePackageVersions"),
               call(70, "PublishPackageVersion"), call(71, "DeletePackageVersions")]
    alerts = scan([rule], records)
    assert [(a.first_event_time, a.event_count) for a in alerts] == [(at(0), 4), (at(70), 2)]


def _timeline() -> list[dict[str, object]]:
    """Records of the first 14 minutes, in eventTime order, then two hours later."""
    return [call(0, "PublishPackageVersion"), call(2, "DeletePackageVersions"),
            call(3, "PublishPackageVersion", package="b"), read(4), read(5, who="bob"),
            call(6, "PublishPackageVersion"), call(9, "DeletePackageVersions", package="b"),
            call(12, "PublishPackageVersion", package="c"), read(13),
            call(14, "DeletePackageVersions"), read(130), call(200, "ListPackages")]


EARLY = list(range(10))


@settings(max_examples=30, deadline=None)
@given(st.permutations(EARLY))
def test_s44_arrival_order_within_the_lateness_never_changes_alerts(order: list[int]) -> None:
    """Any arrival order of records less than the lateness apart: the same alerts."""
    records = _timeline()
    rules = [publish_then_delete(rule_id="pd"), published_not_deleted("1h", rule_id="pn"),
             silence_rule("30m")]
    arrival = [records[n] for n in order] + records[10:]
    expected = scan(rules, records)
    assert len(expected) >= 4
    assert views(scan(rules, arrival)) == views(expected)


def test_s46_partial_chains_are_forgotten_on_event_time() -> None:
    """A publish never followed by a delete leaves nothing in the store once the clock (the
    watermark minus the lateness) is `within` + the lateness past it (+ the purge period)."""
    store = open_store("memory://")
    rule = publish_then_delete()
    scan([rule], [call(0, "PublishPackageVersion"), call(15 + 15 + 15 + 11, "ListPackages")],
         store=store)
    assert store.stats()["keys"] == 0


def test_s46_a_step_without_a_first_step_stores_nothing() -> None:
    """Deletes of packages nobody published in the window cost no state in a scan."""
    store = open_store("memory://")
    scan([publish_then_delete()], [call(n, "DeletePackageVersions", package=f"p{n}")
                                   for n in range(50)], store=store)
    assert store.stats()["keys"] == 0


def test_s35_steps_route_only_records_that_can_match() -> None:
    """The rule index sends a record only to the steps whose condition can match it."""
    from tests.support.state import evaluator

    engine = evaluator([publish_then_delete()])
    assert [m.rule.step for m in engine.evaluate(call(0, "PublishPackageVersion"))] == [0]
    assert [m.rule.step for m in engine.evaluate(call(0, "DeletePackageVersions"))] == [1]
    assert engine.candidates(call(0, "ListPackages")) == ()
    assert {c.rule.step for c in engine.candidates(call(0, "DeletePackageVersions"))} == {1}



def test_s43_absence_gaps_fold_by_dedup() -> None:
    """Three gaps of one group (after 0, 40 and 80) within the rule's dedup: one alert,
    counted three times, from the first gap's last match to the last's."""
    rule = silence_rule("30m", dedup="6h")
    alerts = scan([rule], [read(0), read(40), read(80), read(200, recipientAccountId="9")])
    mine = [a for a in alerts if a.group_key == "123456789012"]
    assert [(a.first_event_time, a.last_event_time, a.event_count) for a in mine] == [
        (at(0), at(80), 3)]


def test_s40_absence_in_live_mode_fires_on_the_wall_clock_only_past_the_lateness() -> None:
    """The daemon's tick: nothing before the last match + within + lateness on the wall
    clock, one alert after it, none at the next tick."""
    from engine.inputs.eventtime import event_epoch
    from tests.support.state import decider_for, feed

    engine, decider = decider_for([silence_rule("30m")], mode="live")
    last = read(0)
    assert feed(engine, decider, last) == []
    t0 = event_epoch(last)
    assert t0 is not None
    assert decider.tick(t0 + 30 * 60 + 900 - 1) == []
    fired = decider.tick(t0 + 30 * 60 + 900 + 1)
    assert [a.last_event_time for a in fired] == [at(0)]
    assert decider.tick(t0 + 86400) == []


def test_s42_copies_count_once_in_a_distinct_count() -> None:
    """A call delivered to three accounts is one match of its value: the alert counts it
    once and lists every copy."""
    rule = dataclasses.replace(make_rule("enum"), threshold=Threshold(
        3, parse_duration("10m"), "requestParameters.repositoryName"))
    first = call(0, "ReadFromRepository")
    first["requestParameters"]["repositoryName"] = "a"
    records = copies_of(first, ACCOUNTS)
    for minutes, name in ((1, "b"), (2, "c")):
        record = read(minutes)
        record["requestParameters"]["repositoryName"] = name
        records.append(record)
    alerts = scan([rule], records)
    assert len(alerts) == 1
    assert alerts[0].event_count == 3
    assert {r["eventID"] for r in records} <= set(alerts[0].event_ids)


KINDS = ("PublishPackageVersion", "DeletePackageVersions", "ReadFromRepository")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.sampled_from(KINDS), st.sampled_from("ab"),
                          st.booleans()), min_size=1, max_size=14),
       st.randoms(use_true_random=False))
def test_s44_random_streams_give_the_same_alerts_in_any_order_within_the_lateness(
        events: list[tuple[int, str, str, bool]], rng: object) -> None:
    """Random publishes, deletes and reads (some as copies) within 12.5 minutes, then
    hours later: any arrival order of the first part gives the alerts of eventTime order."""
    records: list[dict[str, object]] = []
    for quarter, name, package, copied in events:
        record = call(quarter / 4, name, package=package)
        records.extend(copies_of(record, ACCOUNTS[:2]) if copied else [record])
    rules = [publish_then_delete("5m", rule_id="pd"),
             published_not_deleted("6m", rule_id="pn", dedup="3m"), silence_rule("4m"),
             sequence_rule([Step("p", PUBLISH), Step("r", READ_IT, count=2)], "8m",
                           rule_id="pr")]
    tail = [read(180, recipientAccountId="9")]
    ordered = sorted(records, key=lambda r: (str(r["eventTime"]), str(r.get("sharedEventID")),
                                             str(r["eventID"])))
    shuffled = list(records)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert views(scan(rules, shuffled + tail)) == views(scan(rules, ordered + tail))
