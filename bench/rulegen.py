"""Generated rules for benchmarks: plausible conditions spread over many event names.

Each rule tests eventSource and eventName (as real rules do) plus one more field. About one in
twenty watches `ReadFromRepository`, so the index cannot skip them all; like real detections,
those rarely match (a suspicious package name, an odd client), so the figure measures
evaluation, not alert building.
"""

from __future__ import annotations

from pathlib import Path

from bench.streamgen import OTHER_CALLS

SOURCES = ["codeartifact.amazonaws.com", "iam.amazonaws.com", "s3.amazonaws.com",
           "sts.amazonaws.com", "ec2.amazonaws.com"]
OTHER_NAMES = ["CreateUser", "PutBucketPolicy", "AssumeRole", "RunInstances", "DeleteTrail",
               "AttachRolePolicy", "CreateAccessKey", "GetObject", "ConsoleLogin"]
EXTRAS = [
    "userIdentity.type == 'IAMUser'",
    "userIdentity.sessionContext.attributes.mfaAuthenticated != 'true'",
    "starts_with(userAgent, 'aws-cli')",
    "requestParameters.packageName == 'left-pad'",
    "!ip_in(sourceIPAddress, ['203.0.113.0/24', '10.0.0.0/8'])",
    "contains(userIdentity.arn, ':root')",
    "errorCode == 'AccessDenied'",
]


READ_EXTRAS = [
    "requestParameters.packageName == 'event-stream-{n}'",
    "starts_with(userAgent, 'curl/')",
    "contains(['ap-east-1', 'me-south-1'], awsRegion)",
    "userIdentity.type == 'Root'",
    "ends_with(requestParameters.packageName || '', '-{n}')",
]


def write_rules(directory: Path, count: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    documents = []
    for number in range(count):
        if number % 20 == 0:
            source, name = SOURCES[0], "ReadFromRepository"
        elif number % 2:
            source, name = SOURCES[0], OTHER_CALLS[number % len(OTHER_CALLS)]
        else:
            source = SOURCES[1 + number % (len(SOURCES) - 1)]
            name = OTHER_NAMES[number % len(OTHER_NAMES)]
        extra = EXTRAS[number % len(EXTRAS)]
        if name == "ReadFromRepository":
            extra = READ_EXTRAS[(number // 20) % len(READ_EXTRAS)].format(n=number)
        documents.append(
            f"id: generated-{number:04d}\ntitle: generated rule {number}\nseverity: low\n"
            f"condition: >-\n  eventSource == '{source}' && eventName == '{name}' && {extra}\n")
    path = directory / "generated.yml"
    path.write_text("---\n".join(documents))
    return directory
