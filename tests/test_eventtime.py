"""eventTime text both ways: CloudTrail's form out (iso, now_iso), epochs in (event_epoch)."""

from __future__ import annotations

from freezegun import freeze_time

from engine.inputs.eventtime import event_epoch, iso, now_iso


def test_iso_writes_cloudtrails_form() -> None:
    assert iso(0) == "1970-01-01T00:00:00Z"
    assert iso(1_709_287_365) == "2024-03-01T10:02:45Z"
    assert iso(1_709_287_365.25) == "2024-03-01T10:02:45.250000Z"
    assert iso(-62_135_596_800) == "0001-01-01T00:00:00Z"


def test_iso_and_event_epoch_agree() -> None:
    for text in ("2024-03-01T10:02:45Z", "2024-03-01T10:02:45.000001Z", "1999-12-31T23:59:59Z"):
        epoch = event_epoch({"eventTime": text})
        assert epoch is not None and iso(epoch) == text


@freeze_time("2026-11-25 16:30:00.5")
def test_now_iso_is_the_wall_clock_in_that_form() -> None:
    assert now_iso() == "2026-11-25T16:30:00.500000Z"
