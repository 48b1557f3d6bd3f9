"""Property: in `scan`, the alerts do not depend on arrival order within the allowed lateness.

Hypothesis draws a timeline (principals, source IPs, calls delivered as one to three copies)
and, for every record, a delivery delay shorter than the lateness; records then arrive in
order of eventTime + delay, so none of them is late. The alerts, everything but detected_at,
must equal those of the same timeline in eventTime order, for every kind of rule at once.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.state import copies, make_rule, read, scan, views

LATENESS_MINUTES = 15
RULES = [
    make_rule("plain"),
    make_rule("dedup", dedup="20m"),
    make_rule("burst", threshold=(3, "10m")),
    make_rule("burst-quiet", threshold=(2, "5m"), dedup="30m"),
    make_rule("new-ip", first_seen=("sourceIPAddress", "90d", "30m")),
    make_rule("new-ip-dedup", first_seen=("sourceIPAddress", "1h", ""), dedup="15m"),
    make_rule("per-ip", dedup="10m", group_by=("sourceIPAddress",)),
]

calls = st.tuples(
    st.integers(0, 4 * 3600),  # eventTime: seconds into the timeline
    st.sampled_from(["alice", "bob", "carol"]),
    st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.7", "2001:db8::1"]),
    st.integers(1, 3),  # copies of the call
)


def _timeline(drawn: list[tuple[int, str, str, int]]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for seconds, who, ip, count in drawn:
        minutes = seconds / 60
        if count == 1:
            records.append(read(minutes, who, ip))
        else:
            records.extend(copies(minutes, who, accounts=["111111111111", "222222222222",
                                                          "333333333333"][:count], ip=ip))
    return records


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(calls, min_size=1, max_size=40), st.data())
def test_scan_alerts_independent_of_arrival_order_within_lateness(
        drawn: list[tuple[int, str, str, int]], data: st.DataObject) -> None:
    """Any delivery with delays under the lateness gives the sorted timeline's alerts."""
    timeline = sorted(_timeline(drawn), key=lambda r: r["eventTime"])
    delays = data.draw(st.lists(st.integers(0, LATENESS_MINUTES * 60 - 1),
                                min_size=len(timeline), max_size=len(timeline)))
    arrival = [r for _, _, r in sorted(
        ((_seconds(r) + delay, n, r) for n, (r, delay) in enumerate(zip(timeline, delays,
                                                                         strict=True))),
        key=lambda item: (item[0], item[1]))]
    lateness = LATENESS_MINUTES * 60.0
    expected = views(scan(RULES, copy.deepcopy(timeline), lateness))
    assert views(scan(RULES, copy.deepcopy(arrival), lateness)) == expected


def _seconds(record: dict[str, Any]) -> float:
    from engine.inputs.eventtime import event_epoch

    epoch = event_epoch(record)
    assert epoch is not None
    return epoch
