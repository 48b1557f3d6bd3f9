"""The catalogue of CloudTrail record fields, for linting the paths a rule reads.

A misspelt field (`sourceIpAddress`, `userIdenity`) makes a condition silently false on every
record: the worst kind of detection bug, because nothing fails. The catalogue follows the
CloudTrail record contents reference (userguide/cloudtrail-event-reference-record-contents).
Objects whose keys vary by service and API (`requestParameters`, `responseElements`, ...) are
open: anything below them is accepted.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

OPEN = "*"  # any keys below this point

_SESSION_ISSUER = {
    "type": None, "principalId": None, "arn": None, "accountId": None, "userName": None,
}
_USER_IDENTITY: dict[str, Any] = {
    "type": None, "principalId": None, "arn": None, "accountId": None, "accessKeyId": None,
    "userName": None, "invokedBy": None, "identityProvider": None, "credentialId": None,
    "onBehalfOf": {"userId": None, "identityStoreArn": None},
    "inScopeOf": OPEN,
    "sessionContext": {
        "attributes": {"mfaAuthenticated": None, "creationDate": None},
        "sessionIssuer": _SESSION_ISSUER,
        "webIdFederationData": {"federatedProvider": None, "attributes": OPEN},
        "sourceIdentity": None,
        "ec2RoleDelivery": None,
        "assumedRoot": None,
    },
}

CLOUDTRAIL_FIELDS: Mapping[str, Any] = {
    "eventVersion": None, "userIdentity": _USER_IDENTITY, "eventTime": None,
    "eventSource": None, "eventName": None, "awsRegion": None, "sourceIPAddress": None,
    "userAgent": None, "errorCode": None, "errorMessage": None,
    "requestParameters": OPEN, "responseElements": OPEN, "additionalEventData": OPEN,
    "requestID": None, "eventID": None, "eventType": None, "apiVersion": None,
    "managementEvent": None, "readOnly": None, "resources": OPEN, "recipientAccountId": None,
    "serviceEventDetails": OPEN, "sharedEventID": None, "vpcEndpointId": None,
    "vpcEndpointAccountId": None, "eventCategory": None, "addendum": OPEN,
    "sessionCredentialFromConsole": None, "edgeDeviceDetails": OPEN, "tlsDetails": {
        "tlsVersion": None, "cipherSuite": None, "clientProvidedHostHeader": None,
    },
    "insightDetails": OPEN,
}


def unknown_field(path: tuple[str, ...]) -> str | None:
    """A message when `path` names a field CloudTrail records never have, else None."""
    level: Any = CLOUDTRAIL_FIELDS
    for depth, name in enumerate(path):
        if level is OPEN:
            return None
        if not isinstance(level, Mapping):
            return None  # a scalar indexed further: jmespath gives null, not worth a warning
        if name not in level:
            where = ".".join(path[: depth + 1])
            return f"field {where!r} is not in CloudTrail records{_suggestion(name, level)}"
        level = level[name]
    return None


def _suggestion(name: str, level: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(level), n=1, cutoff=0.75)
    if not close:
        lowered = {key.lower(): key for key in level}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f" (did you mean {close[0]!r}?)" if close else ""
