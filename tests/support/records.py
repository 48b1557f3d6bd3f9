"""Real-shaped CodeArtifact CloudTrail records for tests (shapes from shared/events)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

_ids = itertools.count(1)

BASE: dict[str, Any] = {
    "eventVersion": "1.08",
    "userIdentity": {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLEID:dev",
        "arn": "arn:aws:sts::123456789012:assumed-role/Developer/dev",
        "accountId": "123456789012",
        "accessKeyId": "ASIAEXAMPLEKEY",
        "sessionContext": {
            "attributes": {"mfaAuthenticated": "false", "creationDate": "2024-03-01T09:00:00Z"},
            "sessionIssuer": {
                "type": "Role", "principalId": "AROAEXAMPLEID",
                "arn": "arn:aws:iam::123456789012:role/Developer",
                "accountId": "123456789012", "userName": "Developer",
            },
        },
    },
    "eventTime": "2024-03-01T10:00:00Z",
    "eventSource": "codeartifact.amazonaws.com",
    "eventName": "GetAuthorizationToken",
    "awsRegion": "us-west-2",
    "sourceIPAddress": "198.51.100.7",
    "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 botocore/2.4.5",
    "requestParameters": {"domainName": "acme", "domainOwner": "123456789012"},
    "responseElements": {"sessionToken": "HIDDEN_DUE_TO_SECURITY_REASONS"},
    "requestID": "6b342fc0-5bc8-402b-a7f1-000000000000",
    "eventID": "00000000-0000-0000-0000-000000000000",
    "readOnly": False,
    "eventType": "AwsApiCall",
    "managementEvent": True,
    "recipientAccountId": "123456789012",
}


def record(**changes: Any) -> dict[str, Any]:
    """A fresh record with a unique eventID; `userIdentity__type=...` sets a nested field."""
    result = copy.deepcopy(BASE)
    result["eventID"] = f"e{next(_ids):07d}-0000-4000-8000-000000000000"
    for key, value in changes.items():
        target = result
        *parents, last = key.split("__")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    return result
