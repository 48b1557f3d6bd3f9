"""The daemon's s3 source backfills a prefix in eventTime order, across accounts and regions
(SPEC §7), against a local moto S3 server."""

from __future__ import annotations

import gzip
import random

from tests.support.moto_server import MotoServer


def test_s3_source_backfill_hands_out_keys_in_stamp_order() -> None:
    """S3 lists keys one account-region after the other; the source hands them out merged
    by the delivery stamp in their names (ties by name), a digest skipped."""
    from engine.daemon.aws_sources import S3Source

    keys = []
    for account in ("111111111111", "222222222222"):
        for region in ("us-east-1", "eu-west-1", "us-west-2"):
            for minute in range(0, 60, 5):
                keys.append(f"AWSLogs/{account}/CloudTrail/{region}/2024/03/01/{account}_"
                            f"CloudTrail_{region}_20240301T10{minute:02d}Z_{len(keys):04d}.json.gz")
    digest = "AWSLogs/111111111111/CloudTrail-Digest/us-east-1/2024/03/01/x.json.gz"
    with MotoServer() as aws:
        s3 = aws.client("s3")
        s3.create_bucket(Bucket="trail", CreateBucketConfiguration={
            "LocationConstraint": "us-west-2"})
        for key in [*random.Random(1).sample(keys, len(keys)), digest]:
            s3.put_object(Bucket="trail", Key=key, Body=gzip.compress(b'{"Records": []}'))
        source = S3Source.from_config("backfill", {
            "bucket": "trail", "prefix": "AWSLogs/", "region": "us-west-2",
            "endpoint_url": aws.endpoint_url}, None, {})
        handed = []
        while deliveries := source.poll(0):
            for delivery in deliveries:
                handed.append(delivery.origin.removeprefix("s3://trail/"))
                delivery.ack()
    assert handed == sorted(keys, key=lambda k: (k.split("_")[-2], k.rsplit("/", 1)[-1]))
    assert handed != sorted(keys)  # not S3's listing order
