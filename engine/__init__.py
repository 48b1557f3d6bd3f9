"""trailguard: detection-as-code alerting for AWS CodeArtifact activity in CloudTrail.

Rules are YAML with JMESPath conditions; they are evaluated against CloudTrail records from
files, stdin, S3 and SQS, and matched alerts go to stdout, files, Slack or SNS.
"""

__version__ = "0.1.0"
