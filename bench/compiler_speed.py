"""µs per evaluation: jmespath's TreeInterpreter vs engine.conditions.compiler, on typical rule
conditions.

    python bench/compiler_speed.py [--number N]

The record is a ~1.3 KB CloudTrail CodeArtifact `ReadFromRepository` event (most rules run on
records they do not match, so it is the common case); the upstream conditions also run on an
`UpdateRepository` record that has upstreams. On a record without them the unguarded
``upstreams[?...] | length(@)`` raises (the filter yields null, and length(null) is a type
error), so that one runs guarded with ``|| `[]` `` there. Each figure is the best of 5 runs.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import timeit
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jmespath.functions
from jmespath.parser import Parser
from jmespath.visitor import Options, TreeInterpreter

from engine.conditions.compiler import compile_tree

READ_FROM_REPOSITORY: dict[str, Any] = {
    "eventVersion": "1.08",
    "userIdentity": {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLEID123456789:build-runner",
        "arn": "arn:aws:sts::111122223333:assumed-role/ci-build/build-runner",
        "accountId": "111122223333",
        "accessKeyId": "ASIAEXAMPLEKEY123456",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEID123456789",
                "arn": "arn:aws:iam::111122223333:role/ci-build",
                "accountId": "111122223333",
                "userName": "ci-build",
            },
            "attributes": {"creationDate": "2024-05-02T09:14:07Z", "mfaAuthenticated": "false"},
        },
    },
    "eventTime": "2024-05-02T09:15:31Z",
    "eventSource": "codeartifact.amazonaws.com",
    "eventName": "ReadFromRepository",
    "awsRegion": "eu-west-1",
    "sourceIPAddress": "203.0.113.24",
    "userAgent": "npm/10.5.0 node/v20.12.2 linux x64",
    "requestParameters": {
        "domainName": "acme",
        "domainOwner": "111122223333",
        "repositoryName": "npm-internal",
        "packageName": "left-pad",
        "packageFormat": "npm",
        "packageVersion": "1.3.0",
    },
    "responseElements": None,
    "requestID": "8f14e45f-ceea-467f-a0e6-1a2b3c4d5e6f",
    "eventID": "c9f0f895-fb98-4b91-a2f1-0123456789ab",
    "readOnly": True,
    "resources": [
        {
            "accountId": "111122223333",
            "type": "AWS::CodeArtifact::Repository",
            "ARN": "arn:aws:codeartifact:eu-west-1:111122223333:repository/acme/npm-internal",
        }
    ],
    "eventType": "AwsApiCall",
    "managementEvent": False,
    "recipientAccountId": "111122223333",
    "eventCategory": "Data",
}

UPDATE_REPOSITORY = copy.deepcopy(READ_FROM_REPOSITORY)
UPDATE_REPOSITORY["eventName"] = "UpdateRepository"
UPDATE_REPOSITORY["requestParameters"] = {
    "domainName": "acme",
    "repository": "npm-internal",
    "upstreams": [{"repositoryName": "npm-proxy"}, {"repositoryName": "pypi-store"},
                  {"repositoryName": "x"}],
}

CONDITIONS: list[tuple[str, dict[str, Any]]] = [
    ("eventSource == 'codeartifact.amazonaws.com' && eventName == 'GetAuthorizationToken'"
     " && !contains(['1.2.3.4'], sourceIPAddress)", READ_FROM_REPOSITORY),
    ("userIdentity.type == 'Root'", READ_FROM_REPOSITORY),
    ("eventName == 'PublishPackageVersion'"
     " && userIdentity.sessionContext.attributes.mfaAuthenticated != 'true'",
     READ_FROM_REPOSITORY),
    ("eventName == 'ReadFromRepository' && starts_with(requestParameters.packageName, 'left-')"
     " && userIdentity.type != 'AWSService'", READ_FROM_REPOSITORY),
    ("length(requestParameters.upstreams || `[]`) > `0`", READ_FROM_REPOSITORY),
    ("length(requestParameters.upstreams[?repositoryName == 'x'] || `[]`) > `0`",
     READ_FROM_REPOSITORY),  # unguarded, `null | length(@)` raises: see UPDATE_REPOSITORY
    ("length(requestParameters.upstreams || `[]`) > `0`", UPDATE_REPOSITORY),
    ("requestParameters.upstreams[?repositoryName == 'x'] | length(@) > `0`",
     UPDATE_REPOSITORY),
]


def best_us(func: Any, record: Any, number: int) -> float:
    timer = timeit.Timer("func(record)", globals={"func": func, "record": record})
    return min(timer.repeat(number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="evaluations per timing run")
    args = parser.parse_args()

    functions = jmespath.functions.Functions()
    interpreter = TreeInterpreter(Options(custom_functions=functions))
    size = len(json.dumps(READ_FROM_REPOSITORY, separators=(",", ":")))
    print(f"record: CodeArtifact ReadFromRepository, {size} bytes of JSON")
    print(f"{'interpreted':>12} {'compiled':>9} {'speedup':>8}  condition [record]")
    for expression, record in CONDITIONS:
        parsed = Parser().parse(expression).parsed
        compiled = compile_tree(parsed, functions)
        assert compiled(record) == interpreter.visit(parsed, record)
        slow = best_us(partial(interpreter.visit, parsed), record, args.number)
        fast = best_us(compiled, record, args.number)
        print(f"{slow:9.2f} µs {fast:6.2f} µs {slow / fast:7.1f}x  {expression}"
              f" [{record['eventName']}]")


if __name__ == "__main__":
    main()
