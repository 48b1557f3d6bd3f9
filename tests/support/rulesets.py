"""Rule packs that tests of the scan's drivers share: one rule of each way to decide."""

# A stateless rule, a threshold and a dedup: files and stdin, one process and --workers,
# must give the same alerts for them (tests/test_parallel.py, tests/test_one_driver.py).
DRIVER_RULES = """\
id: publish
title: publish
severity: high
condition: eventSource == 'codeartifact.amazonaws.com' && eventName == 'PublishPackageVersion'
---
id: token-burst
title: tokens
severity: medium
condition: eventSource == 'codeartifact.amazonaws.com' && eventName == 'GetAuthorizationToken'
group_by: userIdentity.arn
threshold: {count: 3, window: 10m}
---
id: reads-deduped
title: reads
severity: low
condition: eventName == 'ReadFromRepository'
group_by: userIdentity.arn
dedup: 30m
"""
