"""An organisation trail's archive, as CloudTrail writes it, for the scan-order tests.

`AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<acct>_CloudTrail_<region>_<stamp>_<n>.json.gz`:
per account-region, one log file every 5 minutes, named by its delivery minute, holding the
records of the 5 minutes before it in no particular order. Walked in path order, every
account-region after the first starts hours behind the newest record read.

The records make stateful rules care about order: reads by a few principals everywhere (a
dedup-1h rule), four 10-minute read bursts each spread over three regions (a threshold), and
publishers who move from one address to another (first_seen).
"""

from __future__ import annotations

import gzip
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from tests.support.records import record

START = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
ACCOUNTS = ("111111111111", "222222222222", "333333333333")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
FILE_MINUTES = 5

RULES = """\
id: reads-deduped
title: reads by a principal
severity: low
condition: eventName == 'ReadFromRepository'
group_by: userIdentity.arn
dedup: 1h
---
id: read-burst
title: a burst of reads
severity: high
condition: >-
  eventName == 'ReadFromRepository'
  && starts_with(userIdentity.arn, 'arn:aws:sts::111111111111:assumed-role/burst')
group_by: userIdentity.arn
threshold: {count: 9, window: 10m}
---
id: publisher-new-address
title: a publisher from a new address
severity: medium
condition: eventName == 'PublishPackageVersion'
group_by: userIdentity.arn
first_seen: {value: sourceIPAddress, remember: 90d}
"""


def _when(minute: float) -> str:
    return (START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(rng: random.Random, minute: float, who: str, region: str, account: str
          ) -> dict[str, Any]:
    return record(eventName="ReadFromRepository", eventTime=_when(minute), awsRegion=region,
                  recipientAccountId=account, sourceIPAddress=f"198.51.100.{rng.randrange(1, 250)}",
                  userIdentity__arn=f"arn:aws:sts::111111111111:assumed-role/{who}")


def timeline(hours: int = 6, seed: int = 16) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Records per (account, region), over `hours` from START."""
    rng = random.Random(seed)
    prefixes = [(a, r) for a in ACCOUNTS for r in REGIONS]
    out: dict[tuple[str, str], list[dict[str, Any]]] = {p: [] for p in prefixes}
    minutes = hours * 60
    for _ in range(hours * 90):  # background reads by five principals, everywhere
        account, region = rng.choice(prefixes)
        out[account, region].append(_read(rng, rng.uniform(0, minutes), f"dev/{rng.randrange(5)}",
                                          region, account))
    for burst in range(4):  # nine reads in ten minutes, three in each of three regions
        begin = 30 + burst * minutes / 4.5
        for n in range(9):
            region = REGIONS[n % 3]
            account = ACCOUNTS[burst % 3]
            out[account, region].append(_read(rng, begin + n, f"burst/{burst}", region, account))
    for who in range(3):  # publishers that move from one address to another
        for n, (hour, address) in enumerate(((0.5, "203.0.113.10"), (hours - 1.5, "203.0.113.99"))):
            account, region = ACCOUNTS[who], REGIONS[(who + n) % 3]
            out[account, region].append(record(
                eventName="PublishPackageVersion", eventTime=_when(hour * 60 + who),
                awsRegion=region, recipientAccountId=account, sourceIPAddress=address,
                userIdentity__arn=f"arn:aws:sts::111111111111:assumed-role/ci/publisher-{who}"))
    return out


Timeline = dict[tuple[str, str], list[dict[str, Any]]]


def write_archive(root: Path, made: Timeline, hours: int = 6, seed: int = 16,
                  minutes: int = FILE_MINUTES) -> list[Path]:
    """`made` (a timeline()) as log files of `minutes` each under `root`; their paths, in
    path order."""
    rng = random.Random(seed)
    paths = []
    for (account, region), records in made.items():
        for n in range(hours * 60 // minutes):
            stamp = START + timedelta(minutes=(n + 1) * minutes)
            low = (stamp - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
            high = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
            inside = [r for r in records if low <= r["eventTime"] < high]
            if not inside:
                continue
            rng.shuffle(inside)  # a log file's records are in no particular order
            paths.append(write_log_file(root, account, region, stamp, inside, rng))
    return sorted(paths)


def write_log_file(root: Path, account: str, region: str, stamp: datetime,
                   records: list[dict[str, Any]], rng: random.Random) -> Path:
    path = root / "AWSLogs" / account / "CloudTrail" / region / stamp.strftime("%Y/%m/%d") / (
        f"{account}_CloudTrail_{region}_{stamp:%Y%m%dT%H%MZ}_{rng.getrandbits(64):016X}.json.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(orjson.dumps({"Records": records})))
    return path


def all_records(made: Timeline) -> list[dict[str, Any]]:
    """Every record of a timeline, in eventTime order (ties: by eventID)."""
    return sorted((r for records in made.values() for r in records),
                  key=lambda r: (r["eventTime"], r["eventID"]))


def lookup_events(records: list[dict[str, Any]]) -> bytes:
    """`aws cloudtrail lookup-events` output: newest first, each record a JSON string."""
    events = [{"EventId": r["eventID"], "EventName": r["eventName"],
               "EventTime": datetime.fromisoformat(r["eventTime"]).timestamp(),
               "CloudTrailEvent": orjson.dumps(r).decode()} for r in reversed(records)]
    return orjson.dumps({"Events": events}, option=orjson.OPT_INDENT_2)


def write_many(root: Path, count: int, prefixes: int = 4) -> None:
    """`count` small log files of one record each, over `prefixes` account-regions, a file
    every 5 minutes in each: an archive that grows in files, not in records per minute."""
    rng = random.Random(count)
    places = [(a, r) for a in ACCOUNTS for r in REGIONS][:prefixes]
    for n in range(count):
        account, region = places[n % prefixes]
        stamp = START + timedelta(minutes=FILE_MINUTES * (n // prefixes + 1))
        moment = stamp - timedelta(minutes=2)
        write_log_file(root, account, region, stamp, [record(
            eventName="ReadFromRepository", eventTime=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            awsRegion=region, recipientAccountId=account)], rng)
