"""Deciding scanned records: the one place where a scan's matches meet the decider.

A scan reads records one of two ways. Files (engine.scan.parallel): each is scanned by
engine.scan.filescan, in this process or a --workers process, and the results of files that
overlap in time are merged on eventTime (engine.decide.merge). A stream (engine.scan.pipeline:
stdin, rule tests, the daemon): a batch of items at a time. Either way what is scanned is a
FileResult - counts, problems, and each kept record as the few values deciding needs
(FileResult.records) - and `decide_result` decides it: it drops exact eventID repeats through
the state store, moves the decider's clock where one process reading the records in that order
would, offers the matches (a threshold-lane match held without a Match made, Decider.hold
inlined), and counts. Deciding lives here once, so files and streams cannot decide apart.

Why a FileResult and not records: a --workers process cannot decide (the decider and its
store are the parent's, and no group's state is split between processes), so it sends what
it scanned, as little of it as deciding needs; the parent decides it here.

Repeats are known once the eventIDs are claimed, in one round trip for many records (a shared
store). A file's scan may run in another process before that, so its eventIDs are claimed
here, after every record was evaluated, and a repeat's matches (and suppressed matches) are
uncounted here; one difference from not evaluating repeats at all is left: a rule that fails
on a record that turns out to be a repeat is counted as an error. A stream claims its batch's
eventIDs before scanning it (engine.scan.pipeline.scan_batch) and scans only what is not a
repeat, so its counts have no such difference (`store=None` here: nothing left to claim).

Late records: `stats.late` counts the records that arrive more than the allowed lateness
behind the decider's clock (the daemon's metric); the summary says how many matches the
decider decided late (Decider.late).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter

from engine.conditions.evaluator import Evaluator
from engine.decide.decider import Decider
from engine.decide.items import GENERAL, HELD_GENERAL, HELD_LANE, KIND, LANE, UNMATCHED
from engine.decide.stubs import stub_of
from engine.model import Alert, Match
from engine.scan.counts import SAMPLE_LIMIT, ScanStats, emit_counted, note_span
from engine.scan.filescan import FileResult
from engine.state import StateStore
from engine.suppressor import Suppressor

__all__ = ["decide_result"]



def decide_result(result: FileResult, evaluator: Evaluator, decider: Decider,
                  store: StateStore | None, emit: Callable[[Alert], None], stats: ScanStats,
                  suppressor: Suppressor | None = None, befores: list[float] | None = None
                  ) -> None:
    """A result's counts, and its records' matches offered to the decider in order.

    `store`: where the records' eventIDs are claimed; None when the caller claimed them
    before the scan and scanned no repeat (see the module's doc).
    `befores`: the merged stream's watermark before each record (engine.decide.merge), where a
    record's own (its file's) would be wrong."""
    rules = evaluator.route_rules  # a sequence's steps are routes of their own
    _count(result, evaluator, stats, suppressor)
    records = result.records
    if befores is None:
        befores = list(map(itemgetter(2), records))  # each record's own (in C: per record)
    repeats = (_claim(result, befores, store, stats) if store is not None
               else [False] * len(records))
    offer, lane_hold, lane_rules = decider.offer, decider.lane.hold, decider.lane_rules
    # Decider.hold inlined (its lateness check, then the lane's), and the watermark kept
    # here between the calls that move it: this loop runs for every record of the scan.
    watermark, lateness = decider.watermark, decider.allowed_lateness
    suppressed = dict(result.suppressed)
    late = 0
    for n, (item, repeat, before) in enumerate(zip(records, repeats, befores, strict=True)):
        hits = suppressed.get(n) if suppressed else None
        if repeat:  # one process would not have evaluated it: nor counted its matches
            stats.duplicates += 1
            stats.events -= 1
            if hits:
                evaluator.matches.subtract(rule_id for rule_id, _ in hits)
            if item[KIND] == LANE or item[KIND] == HELD_LANE:
                evaluator.matches[rules[item[4]].id] -= 1
            elif item[KIND] == GENERAL or item[KIND] == HELD_GENERAL:
                evaluator.matches.subtract(rules[index].id for index, _ in item[4])
            continue
        if hits and suppressor:
            suppressor.count(hits)
        epoch = item[1]
        if before > watermark:  # where a single process would have advanced
            for alert in decider.advance(before):
                emit_counted(alert, emit, stats)
            watermark = decider.watermark
        if epoch is not None:
            if epoch > watermark:
                for alert in decider.advance(epoch):
                    emit_counted(alert, emit, stats)
                watermark = decider.watermark
            elif epoch < watermark - lateness:
                late += 1
        if item[KIND] == UNMATCHED:
            continue
        if item[KIND] == LANE:  # engine.decide.items
            event_id, epoch, _, _, rule_index, group, call, account, time, back = item
            if not (watermark - lateness <= epoch <= watermark and lane_hold(
                    rules[rule_index], group, epoch, event_id, call, account, time, back)):
                record = back if isinstance(back, dict) else stub_of(
                    (event_id, call, account, time), back)
                for alert in offer(Match(rules[rule_index], record, group), epoch):
                    emit_counted(alert, emit, stats)
                watermark = decider.watermark
            continue
        if item[KIND] == HELD_LANE:  # a stream's (filescan.scan_stream): the record at hand
            event_id, epoch, _, _, rule_index, group, call, account, time, back, record = item
            if not (watermark - lateness <= epoch <= watermark and lane_hold(
                    rules[rule_index], group, epoch, event_id, call, account, time, back)):
                for alert in offer(Match(rules[rule_index], record, group), epoch):
                    emit_counted(alert, emit, stats)
                watermark = decider.watermark
            continue
        if item[KIND] == HELD_GENERAL:  # a stream's too: the lane holds the way back
            record, epoch, _, _, found, back = item
            get = record.get
            for rule_index, group_key in found:
                rule = rules[rule_index]
                if rule.id in lane_rules and watermark - lateness <= epoch <= watermark and (
                        lane_hold(rule, group_key, epoch, get("eventID"), get("sharedEventID"),
                                  get("recipientAccountId"), get("eventTime"), back)):
                    continue
                for alert in offer(Match(rule, record, group_key), epoch):
                    emit_counted(alert, emit, stats)
                watermark = decider.watermark
            continue
        record, _, _, _, found = item
        for rule_index, group_key in found:
            for alert in offer(Match(rules[rule_index], record, group_key), epoch):
                emit_counted(alert, emit, stats)
        watermark = decider.watermark
    stats.late += late
    if result.last_epoch > decider.watermark:
        for alert in decider.advance(result.last_epoch):
            emit_counted(alert, emit, stats)


def _count(result: FileResult, evaluator: Evaluator, stats: ScanStats,
           suppressor: Suppressor | None) -> None:
    """Add what the scan counted (events, problems, matches, rule and suppression errors) to
    the scan's totals; a repeat's share is taken back as the records are decided."""
    stats.events += result.events
    stats.skipped += result.skipped
    stats.skips.merge(result.skips)
    for line, unreadable, count in result.malformed:
        stats.malformed += count
        stats.unreadable += unreadable
        if len(stats.malformed_samples) < SAMPLE_LIMIT:
            stats.malformed_samples.append(line)
    evaluator.matches.update(result.matches)
    evaluator.errors.update(result.errors)
    for rule_id, message in result.first_error.items():
        evaluator.first_error.setdefault(rule_id, message)
    if suppressor:
        suppressor.errors.update(result.suppression_errors)
        # matches suppressed on records that were not kept (no eventID): never repeats
        suppressor.count(hit for at, hits in result.suppressed if at == -1 for hit in hits)


def _claim(result: FileResult, befores: list[float], store: StateStore, stats: ScanStats
           ) -> list[bool]:
    """Claim the records' eventIDs; True where one is a repeat.

    Where the newest eventTime before a record in its file is newer than any claimed so far,
    a claim without eventID carries it, and the file's newest closes them: the store sees
    the eventTimes one process would have claimed."""
    claims: list[tuple[str | None, float | None]] = []
    newest, claimed = float("-inf"), []
    for item, before in zip(result.records, befores, strict=True):
        epoch = item[1]
        if before > newest:
            claims.append((None, before))
            newest = before
        claimed.append(len(claims))
        if item[KIND] == GENERAL or item[KIND] == HELD_GENERAL:  # the record itself
            claims.append((item[0].get("eventID"), epoch))
        else:
            claims.append((item[0], epoch))
        if epoch is not None and epoch > newest:
            newest = epoch
    if result.last_epoch > newest:
        claims.append((None, result.last_epoch))
    seen = store.seen_events(claims)
    if stats.span is not None:
        note_span(stats.span, (epoch for _, epoch in claims))
    return [seen[n] for n in claimed]
