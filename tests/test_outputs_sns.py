"""SNS through boto3 against moto in server mode, read back from a subscribed SQS queue."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.model import Alert
from engine.outputs import DeliveryReport, RetryPolicy, build_dispatcher
from engine.outputs.sns import MAX_BYTES
from tests.support.delivery import EVENT, make_alert, make_rule, no_proxy, write_config
from tests.support.moto_server import MotoServer

__all__ = ["no_proxy"]
FAST = RetryPolicy(max_attempts=2, base=0.01, cap=0.02, scale=0.01)


@pytest.fixture(scope="module")
def aws() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def _sns(aws: MotoServer, arn: str, **extra: object) -> dict[str, object]:
    return {"type": "sns", "topic_arn": arn, "endpoint_url": aws.endpoint_url, **extra}


def _deliver(tmp_path: Path, settings: dict[str, object], *alerts: Alert,
             wait: bool = False) -> DeliveryReport:
    _, config = write_config(tmp_path, {"sns": settings}, [{"outputs": ["sns"]}])
    dispatcher = build_dispatcher(config, "memory://", FAST)
    for alert in alerts:
        dispatcher.send(alert)
        if wait:
            dispatcher.wait(10)
    return dispatcher.close()


def test_sns_subscriber_receives_alert_json_subject_and_attributes(
        tmp_path: Path, aws: MotoServer) -> None:
    """The SQS subscriber gets the SPEC §4 JSON as Message, the Subject and both attributes."""
    topic = aws.topic()
    alert = make_alert()
    report = _deliver(tmp_path, _sns(aws, topic.arn), alert)
    [envelope] = topic.received()
    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == topic.arn
    assert envelope["Subject"] == "[HIGH] CodeArtifact token requested from an unknown network"
    assert json.loads(envelope["Message"]) == json.loads(json.dumps(alert.to_dict()))
    assert envelope["MessageAttributes"] == {
        "severity": {"Type": "String", "Value": "high"},
        "rule_id": {"Type": "String", "Value": "codeartifact-token-unknown-network"}}
    assert report.outputs["sns"].delivered == 1 and report.left == 0


def test_sns_fifo_gets_group_and_dedup_ids_and_updates_arrive(
        tmp_path: Path, aws: MotoServer) -> None:
    """FIFO: group = rule id, dedup = alert id (+ count for updates, which must not vanish)."""
    topic = aws.topic(fifo=True)
    alert = make_alert()
    _, config = write_config(tmp_path, {"sns": _sns(aws, topic.arn)}, [{"outputs": ["sns"]}])
    dispatcher = build_dispatcher(config, "memory://", FAST)
    request = dispatcher.outputs["sns"].request(alert.to_dict())  # type: ignore[attr-defined]
    assert request["MessageGroupId"] == "codeartifact-token-unknown-network"
    assert request["MessageDeduplicationId"] == alert.alert_id
    dispatcher.send(alert)
    dispatcher.wait(10)
    alert.event_count, alert.update = 4, True
    dispatcher.send(alert)
    dispatcher.close()
    first, update = (json.loads(m["Message"]) for m in topic.received())
    assert "update" not in first and first["event_count"] == 1
    assert update["update"] is True and update["event_count"] == 4
    output = build_dispatcher(config, "memory://", FAST, drain=False)
    update_request = output.outputs["sns"].request(alert.to_dict())  # type: ignore[attr-defined]
    output.close()
    assert update_request["MessageDeduplicationId"] == f"{alert.alert_id}-u4"


def test_sns_message_over_256kb_arrives_trimmed_and_marked(tmp_path: Path, aws: MotoServer) -> None:
    """A 400 KB event still arrives: its largest field trimmed, the message says so."""
    topic = aws.topic()
    event = json.loads(json.dumps(EVENT))
    event["requestParameters"]["policyDocument"] = json.dumps({"Statement": ["x" * 400_000]})
    report = _deliver(tmp_path, _sns(aws, topic.arn), make_alert(event=event))
    [envelope] = topic.received()
    assert len(envelope["Message"].encode()) < MAX_BYTES
    message = json.loads(envelope["Message"])
    assert message["trimmed"]["fields"] == ["event.requestParameters.policyDocument"]
    assert message["event"]["eventName"] == "GetAuthorizationToken"
    assert report.left == 0


def test_sns_missing_topic_is_permanent(
        tmp_path: Path, aws: MotoServer, caplog: pytest.LogCaptureFixture) -> None:
    """NotFound breaks the output: one attempt, one clear error, alerts kept in the outbox."""
    arn = "arn:aws:sns:us-west-2:123456789012:no-such-topic"
    report = _deliver(tmp_path, _sns(aws, arn), make_alert(), make_alert(n=1))
    assert report.outputs["sns"].broken and "NotFound" in report.outputs["sns"].broken
    assert (report.outputs["sns"].failed, report.left) == (2, 2)
    assert sum("NotFound" in r.getMessage() for r in caplog.records if r.levelname == "ERROR") \
        == 1


def test_sns_unreachable_endpoint_is_retried_then_kept(tmp_path: Path, aws: MotoServer) -> None:
    """Connection refused is retryable: retried, then kept in the outbox, not dropped."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    settings = {"type": "sns", "topic_arn": aws.topic().arn,
                "endpoint_url": f"http://127.0.0.1:{port}", "timeout": 1}
    report = _deliver(tmp_path, settings, make_alert())
    assert report.outputs["sns"].failed == 1 and report.left == 1
    assert report.outputs["sns"].broken is None


def test_sns_honours_aws_endpoint_url(
        tmp_path: Path, aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without endpoint_url in the config, botocore's AWS_ENDPOINT_URL is used."""
    topic = aws.topic()
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    report = _deliver(tmp_path, {"type": "sns", "topic_arn": topic.arn}, make_alert())
    assert report.outputs["sns"].delivered == 1 and len(topic.received()) == 1


def test_sns_role_arn_is_assumed(
        tmp_path: Path, aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """With role_arn, STS credentials sign the publish (moto issues ASIA… session keys)."""
    topic = aws.topic()
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)
    settings = {"type": "sns", "topic_arn": topic.arn, "region": "us-west-2",
                "role_arn": "arn:aws:iam::123456789012:role/trailguard-publisher"}
    _, config = write_config(tmp_path, {"sns": settings}, [{"outputs": ["sns"]}])
    dispatcher = build_dispatcher(config, "memory://", FAST)
    output = dispatcher.outputs["sns"]
    credentials = output.client()._request_signer._credentials  # type: ignore[attr-defined]
    assert credentials.access_key != os.environ["AWS_ACCESS_KEY_ID"]
    assert credentials.access_key.startswith("ASIA")
    dispatcher.send(make_alert(make_rule(severity="critical")))
    assert dispatcher.close().outputs["sns"].delivered == 1
    assert json.loads(topic.received()[0]["Message"])["severity"] == "critical"
