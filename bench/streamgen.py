"""A realistic CodeArtifact CloudTrail stream for benchmarks, written as gzipped log files.

About 90% `ReadFromRepository` (npm/pip/maven clients fetch every tarball), the rest token
requests, package-client and admin calls; ~1.3 KB records from a few hundred principals,
delivered as CloudTrail log files of 500 records each, in CloudTrail's key layout.
"""

from __future__ import annotations

import gzip
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ACCOUNT = "123456789012"
OTHER_CALLS = [
    "GetAuthorizationToken", "GetRepositoryEndpoint", "DescribePackageVersion", "ListPackages",
    "ListPackageVersions", "PublishPackageVersion", "PutPackageMetadata", "DescribeRepository",
    "GetPackageVersionAsset", "UpdatePackageVersionsStatus", "PutRepositoryPermissionsPolicy",
    "AssociateExternalConnection", "CreateRepository", "UpdateRepository", "DeletePackageVersions",
]
AGENTS = [
    "npm/10.2.4 node/v20.11.0 linux x64 workspaces/false ci/github-actions",
    "pip/24.0 {\"ci\":null,\"cpu\":\"x86_64\",\"implementation\":{\"name\":\"CPython\"}}",
    "Apache-Maven/3.9.6 (Java 17.0.10; Linux 6.1.0)",
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79 exe/x86_64.amzn.2023 prompt/off",
]
PACKAGES = ["lodash", "react", "express", "requests", "numpy", "guava", "jackson-core", "boto3"]


def _identity(rng: random.Random, user: int) -> dict[str, Any]:
    role = f"build-{user % 40}" if user % 3 else f"dev-{user}"
    return {
        "type": "AssumedRole",
        "principalId": f"AROA{user:016d}:session-{user}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/session-{user}",
        "accountId": ACCOUNT,
        "accessKeyId": f"ASIA{rng.getrandbits(64):016X}",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": f"AROA{user:016d}",
                              "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                              "accountId": ACCOUNT, "userName": role},
            "attributes": {"creationDate": "2024-03-01T08:00:00Z",
                           "mfaAuthenticated": "true" if user % 7 == 0 else "false"},
        },
    }


def make_record(rng: random.Random, moment: datetime) -> dict[str, Any]:
    user = rng.randrange(300)
    name = "ReadFromRepository" if rng.random() < 0.9 else rng.choice(OTHER_CALLS)
    package = rng.choice(PACKAGES)
    version = f"{rng.randrange(1, 9)}.{rng.randrange(30)}.{rng.randrange(50)}"
    params: dict[str, Any] = {"domainName": "acme", "domainOwner": ACCOUNT,
                              "repositoryName": rng.choice(["npm-store", "pypi-store", "maven"])}
    if name in ("ReadFromRepository", "PublishPackageVersion", "GetPackageVersionAsset"):
        params.update(packageName=package, packageFormat="npm", packageVersion=version)
    if name == "GetAuthorizationToken":
        params = {"domainName": "acme", "domainOwner": ACCOUNT, "durationSeconds": 3600}
    record = {
        "eventVersion": "1.08", "userIdentity": _identity(rng, user),
        "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "codeartifact.amazonaws.com", "eventName": name,
        "awsRegion": "us-west-2",
        "sourceIPAddress": f"203.0.113.{rng.randrange(1, 255)}" if rng.random() < 0.8
        else f"198.51.100.{rng.randrange(1, 255)}",
        "userAgent": rng.choice(AGENTS), "requestParameters": params,
        "responseElements": None,
        "additionalEventData": {"httpMethod": "GET",
                                "requestUri": f"/npm/{package}/-/{package}-{version}.tgz"},
        "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
        "readOnly": name.startswith(("Read", "Get", "List", "Describe")),
        "eventType": "AwsApiCall", "managementEvent": name != "ReadFromRepository",
        "recipientAccountId": ACCOUNT, "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader":
                       f"acme-{ACCOUNT}.d.codeartifact.us-west-2.amazonaws.com"},
    }
    return record


def generate(directory: Path, events: int, per_file: int = 500, seed: int = 7) -> list[Path]:
    """Write `events` records as gzipped CloudTrail log files (reused if already there)."""
    marker = directory / f".complete-{events}-{per_file}-{seed}"
    if marker.exists():
        return sorted(directory.rglob("*.json.gz"))
    rng = random.Random(seed)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    paths = []
    for number in range((events + per_file - 1) // per_file):
        count = min(per_file, events - number * per_file)
        moment = start + timedelta(seconds=number * 30)
        records = [make_record(rng, moment + timedelta(seconds=rng.randrange(300)))
                   for _ in range(count)]
        day = moment.strftime("%Y/%m/%d")
        path = directory / f"AWSLogs/{ACCOUNT}/CloudTrail/us-west-2/{day}" / (
            f"{ACCOUNT}_CloudTrail_us-west-2_{moment:%Y%m%dT%H%MZ}_{number:06d}.json.gz")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(orjson.dumps({"Records": records}), compresslevel=6))
        paths.append(path)
    marker.touch()
    return paths
