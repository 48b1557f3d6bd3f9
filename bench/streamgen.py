"""A realistic CodeArtifact CloudTrail stream for benchmarks, written as gzipped log files.

About 90% `ReadFromRepository` (npm/pip/maven clients fetch every tarball), the rest token
requests, package-client and admin calls; ~1.3 KB records from a few hundred principals,
delivered as CloudTrail log files of 500 records each, in CloudTrail's key layout, over
2 accounts x 3 regions as an organisation trail writes them: a file's name carries its delivery
minute, after its records' eventTimes, and a directory walked by name reads one
account-region after the other (what `scan archive/` must put back in time order). A package
mirror reads from all regions for 12 minutes every 2 hours, so the mass-download threshold
fires where the records are decided in time order.
"""

from __future__ import annotations

import gzip
import random
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ACCOUNT = "123456789012"
PLACES = [(account, region) for account in (ACCOUNT, "210987654321")
          for region in ("us-west-2", "us-east-1", "eu-west-1")]
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


def _identity(rng: random.Random, user: int, account: str = ACCOUNT) -> dict[str, Any]:
    role = f"build-{user % 40}" if user % 3 else f"dev-{user}"
    if user >= 300:
        role = "package-mirror"
    return {
        "type": "AssumedRole",
        "principalId": f"AROA{user:016d}:session-{user}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/session-{user}",
        "accountId": account,
        "accessKeyId": f"ASIA{rng.getrandbits(64):016X}",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": f"AROA{user:016d}",
                              "arn": f"arn:aws:iam::{account}:role/{role}",
                              "accountId": account, "userName": role},
            "attributes": {"creationDate": "2024-03-01T08:00:00Z",
                           "mfaAuthenticated": "true" if user % 7 == 0 else "false"},
        },
    }


def make_record(rng: random.Random, moment: datetime, account: str = ACCOUNT,
                region: str = "us-west-2", mirrors: bool = False) -> dict[str, Any]:
    user = rng.randrange(300)
    if mirrors and (moment.timestamp() // 60) % 120 < 12 and rng.random() < 0.15:
        user = 300  # a package mirror syncs for 12 minutes every 2 hours, from all regions
    name = ("ReadFromRepository" if rng.random() < 0.9 or user == 300
            else rng.choice(OTHER_CALLS))
    package = rng.choice(PACKAGES)
    version = f"{rng.randrange(1, 9)}.{rng.randrange(30)}.{rng.randrange(50)}"
    params: dict[str, Any] = {"domainName": "acme", "domainOwner": ACCOUNT,
                              "repositoryName": rng.choice(["npm-store", "pypi-store", "maven"])}
    if name in ("ReadFromRepository", "PublishPackageVersion", "GetPackageVersionAsset"):
        params.update(packageName=package, packageFormat="npm", packageVersion=version)
    if name == "GetAuthorizationToken":
        params = {"domainName": "acme", "domainOwner": ACCOUNT, "durationSeconds": 3600}
    record = {
        "eventVersion": "1.08", "userIdentity": _identity(rng, user, account),
        "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "codeartifact.amazonaws.com", "eventName": name,
        "awsRegion": region,
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
        "recipientAccountId": account, "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader":
                       f"acme-{ACCOUNT}.d.codeartifact.{region}.amazonaws.com"},
    }
    return record


def generate(directory: Path, events: int, per_file: int = 500, seed: int = 7) -> list[Path]:
    """Write `events` records as gzipped CloudTrail log files (reused if already there);
    their paths in name order, which is not time order."""
    marker = directory / f".complete-v4-{events}-{per_file}-{seed}"
    if marker.exists():
        return sorted(directory.rglob("*.json.gz"))
    shutil.rmtree(directory, ignore_errors=True)  # an older layout's files would mix in
    rng = random.Random(seed)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    paths = []
    for number in range((events + per_file - 1) // per_file):
        count = min(per_file, events - number * per_file)
        moment = start + timedelta(seconds=number * 30)
        account, region = PLACES[number % len(PLACES)]
        records = [make_record(rng, moment + timedelta(seconds=rng.randrange(300)), account,
                               region, mirrors=True) for _ in range(count)]
        stamp = moment + timedelta(minutes=5)  # delivered after its records
        day = stamp.strftime("%Y/%m/%d")
        path = directory / f"AWSLogs/{account}/CloudTrail/{region}/{day}" / (
            f"{account}_CloudTrail_{region}_{stamp:%Y%m%dT%H%MZ}_{number:06d}.json.gz")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(orjson.dumps({"Records": records}), compresslevel=6))
        paths.append(path)
    marker.touch()
    return sorted(paths)
