"""Generate `tests/data/baseline/`: one UTC day of ordinary CodeArtifact activity.

The CodeArtifact rule pack must stay silent on this day (tests/test_rule_pack.py scans it with
`tests/data/baseline/trailguard.yml`). It is what a mid-sized engineering org does on a Tuesday:

* CI publishes: CodeBuild (`ci-publisher`) and self-hosted GitHub Actions runners
  (`github-actions-release`) get short tokens, install dependencies and publish npm, Maven and
  PyPI packages; both roles are the config's `ci_publishers`.
* Developers sign in through IAM Identity Center from the office, the VPN or the office's IPv6
  range (`trusted_networks`), run `aws codeartifact login` (3600 s tokens) and install packages
  through npm, pip and Maven (`ReadFromRepository`) or the API (`GetPackageVersionAsset`).
* Builds in the shared-services account read across accounts (`trusted_accounts`): each of
  those calls arrives twice, once per account, with one `sharedEventID`.
* Routine Describe/List calls from the console and an hourly inventory integration; a platform
  admin (MFA) promotes and tags packages and sets a cross-account read policy for a trusted
  account; a few calls fail (AccessDenied, not found) as they do every day.

Output: gzipped CloudTrail log files `{"Records": [...]}` under the key layout CloudTrail uses
(`AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_X.json.gz`),
one file per account, region and hour, records in no particular order (as CloudTrail delivers).
Deterministic: a fixed seed and gzip mtime 0, so re-running gives byte-identical files.

    python tests/data/make_baseline.py        # rewrites tests/data/baseline/AWSLogs/

The record builders (`assumed_role`, `iam_user`, `record`) are also what the rule pack's own
test records under `rules/codeartifact/events/` were built with.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import shutil
import string
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "baseline" / "AWSLogs"
DAY = datetime(2024, 5, 14, tzinfo=UTC)  # a Tuesday
SEED = 20240514

CENTRAL = "111122223333"  # owns the `acme` (us-west-2) and `acme-eu` (eu-west-1) domains
SHARED = "444455556666"  # shared-services: its builds read from acme across accounts
ORG_ID = "o-a1b2c3d4e5"

OFFICE_V4 = "203.0.113."  # 203.0.113.0/24
VPN_V4 = "198.51.100."  # 198.51.100.0/25: VPN users .64-.126, CI NAT gateways .10-.21
OFFICE_V6 = "2001:db8:1:"  # 2001:db8:1::/48
VPC_V4 = "10.42."  # 10.0.0.0/8, through the CodeArtifact VPC endpoints

Record = dict[str, Any]
_rng = random.Random(SEED)


# --- record builders -------------------------------------------------------------------------

def _ident(prefix: str, text: str, length: int = 17) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest().upper()
    alphabet = string.ascii_uppercase + "234567"
    pairs = (digest[i:i + 2] for i in range(0, 2 * length, 2))
    return prefix + "".join(alphabet[int(pair, 16) % 32] for pair in pairs)


def new_id(rng: random.Random | None = None) -> str:
    return str(uuid.UUID(int=(rng or _rng).getrandbits(128), version=4))


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def assumed_role(account: str, role: str, session: str, *, created: datetime,
                 mfa: bool = False, path: str = "", web_identity: str | None = None,
                 source_identity: str | None = None) -> Record:
    """An `AssumedRole` userIdentity (IAM Identity Center, CodeBuild, OIDC, ...)."""
    role_id = _ident("AROA", f"{account}:{role}")
    context: Record = {
        "sessionIssuer": {
            "type": "Role", "principalId": role_id,
            "arn": f"arn:aws:iam::{account}:role/{path}{role}",
            "accountId": account, "userName": role,
        },
        "attributes": {"creationDate": iso(created),
                       "mfaAuthenticated": "true" if mfa else "false"},
    }
    if web_identity:
        context["webIdFederationData"] = {
            "federatedProvider": f"arn:aws:iam::{account}:oidc-provider/{web_identity}",
            "attributes": {},
        }
    else:
        context["webIdFederationData"] = {}
    if source_identity:
        context["sourceIdentity"] = source_identity
    return {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": _ident("ASIA", f"{account}:{role}:{session}:{created}", 16),
        "sessionContext": context,
    }


def iam_user(account: str, name: str, *, temporary: bool = False, mfa: bool = False,
             created: datetime | None = None) -> Record:
    """An `IAMUser` userIdentity: long-term keys (AKIA...) unless `temporary` (ASIA...)."""
    identity: Record = {
        "type": "IAMUser",
        "principalId": _ident("AIDA", f"{account}:{name}"),
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": _ident("ASIA" if temporary else "AKIA", f"{account}:{name}:{temporary}",
                              16),
        "userName": name,
    }
    if temporary:
        identity["sessionContext"] = {
            "sessionIssuer": {},
            "webIdFederationData": {},
            "attributes": {"creationDate": iso(created or DAY),
                           "mfaAuthenticated": "true" if mfa else "false"},
        }
    return identity


def root(account: str, *, mfa: bool = True, created: datetime | None = None) -> Record:
    identity: Record = {
        "type": "Root",
        "principalId": account,
        "arn": f"arn:aws:iam::{account}:root",
        "accountId": account,
        "accessKeyId": _ident("ASIA", f"{account}:root:{created}", 16),
    }
    if created is not None:
        identity["sessionContext"] = {
            "sessionIssuer": {}, "webIdFederationData": {},
            "attributes": {"creationDate": iso(created),
                           "mfaAuthenticated": "true" if mfa else "false"},
        }
    return identity


READ_ONLY_PREFIXES = ("Get", "Describe", "List")
PACKAGE_CLIENT = frozenset({"ReadFromRepository", "PublishPackageVersion", "PutPackageMetadata"})


def record(name: str, who: Record, when: datetime, ip: str, ua: str, params: Record | None, *,
           region: str = "us-west-2", response: Any = None, error: str | None = None,
           error_message: str | None = None, recipient: str | None = None,
           shared_event_id: str | None = None, vpce: str | None = None,
           console: bool | None = None, domain_host: tuple[str, str] | None = None,
           additional: Record | None = None, event_id: str | None = None,
           rng: random.Random | None = None) -> Record:
    """One CodeArtifact CloudTrail record, shaped like the ones in the CodeArtifact guide."""
    rec: Record = {
        "eventVersion": "1.09",
        "userIdentity": who,
        "eventTime": iso(when),
        "eventSource": "codeartifact.amazonaws.com",
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": ua,
    }
    if error:
        rec["errorCode"] = error
        rec["errorMessage"] = error_message or (
            f"User: {who.get('arn')} is not authorized to perform: codeartifact:{name} "
            "because no identity-based policy allows the codeartifact:" f"{name} action")
    rec["requestParameters"] = params
    rec["responseElements"] = None if error else response
    if additional:
        rec["additionalEventData"] = additional
    rec["requestID"] = new_id(rng)
    rec["eventID"] = event_id or new_id(rng)
    read_only = name.startswith(READ_ONLY_PREFIXES) and name != "GetAuthorizationToken"
    rec["readOnly"] = read_only or name == "ReadFromRepository"
    rec["eventType"] = "AwsApiCall"
    rec["managementEvent"] = True
    rec["recipientAccountId"] = recipient or who.get("accountId")
    if shared_event_id:
        rec["sharedEventID"] = shared_event_id
    if vpce:
        rec["vpcEndpointId"] = vpce
        rec["vpcEndpointAccountId"] = recipient or who.get("accountId")
    rec["eventCategory"] = "Management"
    if domain_host:
        host = f"{domain_host[0]}-{domain_host[1]}.d.codeartifact.{region}.amazonaws.com"
    else:
        host = f"codeartifact.{region}.amazonaws.com"
    rec["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                         "clientProvidedHostHeader": host}
    if console is not None:
        rec["sessionCredentialFromConsole"] = "true" if console else "false"
    return rec


def copy_for(rec: Record, recipient: str, rng: random.Random | None = None) -> Record:
    """The copy of a cross-account call delivered to `recipient` (own eventID, same call)."""
    other = json.loads(json.dumps(rec))
    other["eventID"] = new_id(rng)
    other["recipientAccountId"] = recipient
    if "vpcEndpointAccountId" in other:
        other["vpcEndpointAccountId"] = recipient
    return other


# --- what people and machines use -------------------------------------------------------------

NPM_PACKAGES = [("lodash", "4.17.21"), ("express", "4.19.2"), ("react", "18.3.1"),
                ("axios", "1.6.8"), ("typescript", "5.4.5"), ("@types/node", "20.12.11"),
                ("jest", "29.7.0"), ("@acme/ui-kit", "3.14.0"), ("@acme/auth-client", "2.2.1"),
                ("eslint", "8.57.0"), ("webpack", "5.91.0"), ("dotenv", "16.4.5")]
PYPI_PACKAGES = [("requests", "2.31.0"), ("boto3", "1.34.103"), ("numpy", "1.26.4"),
                 ("pandas", "2.2.2"), ("acme-billing-sdk", "0.9.3"), ("pydantic", "2.7.1"),
                 ("fastapi", "0.111.0"), ("urllib3", "2.2.1")]
MAVEN_PACKAGES = [("com.google.guava", "guava", "33.2.0-jre"),
                  ("org.springframework", "spring-core", "6.1.6"),
                  ("com.acme.payments", "payments-api", "5.3.0"),
                  ("org.slf4j", "slf4j-api", "2.0.13")]

DEVELOPERS = ["maria.garcia", "wei.chen", "olusegun.adeyemi", "priya.nair", "tom.becker",
              "aiko.tanaka"]
SSO_DEV_ROLE = "AWSReservedSSO_Developer_0a1b2c3d4e5f6a7b"
SSO_PATH = "aws-reserved/sso.amazonaws.com/"
CLI_UAS = [
    "aws-cli/2.15.45 md/awscrt#0.19.19 ua/2.0 os/macos#23.4.0 md/arch#arm64 lang/python#3.11.8 "
    "md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off "
    "md/command#codeartifact.login",
    "aws-cli/2.15.40 md/awscrt#0.19.19 ua/2.0 os/linux#6.5.0-35-generic md/arch#x86_64 "
    "lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe "
    "md/distrib#ubuntu.22 md/prompt#off md/command#codeartifact.login",
    "aws-cli/2.13.25 Python/3.11.5 Windows/10 exe/AMD64 prompt/off "
    "command/codeartifact.get-authorization-token",
]
NPM_UAS = ["npm/10.5.0 node/v20.12.2 darwin arm64 workspaces/false",
           "npm/10.2.4 node/v20.11.0 linux x64 workspaces/false ci/codebuild",
           "npm/9.8.1 node/v18.18.0 win32 x64 workspaces/false"]
PIP_UA = ('pip/24.0 {"ci":null,"cpu":"x86_64","implementation":{"name":"CPython",'
          '"version":"3.11.9"},"installer":{"name":"pip","version":"24.0"},'
          '"python":"3.11.9","system":{"name":"Linux","release":"6.5.0-35-generic"}}')
MAVEN_UA = "Apache-Maven/3.9.6 (Java 17.0.11; Linux 5.10.215-203.850.amzn2.x86_64)"
TWINE_UA = "twine/5.0.0 CPython/3.12.3"
CONSOLE_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")
SDK_UA = "Boto3/1.34.103 md/Botocore#1.34.103 ua/2.0 os/linux#5.10.215 lang/python#3.12.3"
GO_SDK_UA = "aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.2 md/GOOS#linux api/codeartifact#1.27.0"
VPCE_USW2 = "vpce-0a1b2c3d4e5f60718"


def _token_params(domain: str, owner: str | None, seconds: int | None, style: str) -> Record:
    params: Record = {"domainName" if style == "client" else "domain": domain}
    if owner:
        params["domainOwner"] = owner
    if seconds is not None:
        params["durationSeconds"] = seconds
    return params


def _read_params(domain: str, owner: str, repo: str, fmt: str, package: str,
                 version: str, namespace: str | None = None) -> Record:
    params = {"domainName": domain, "domainOwner": owner, "repositoryName": repo,
              "packageName": package, "packageFormat": fmt, "packageVersion": version}
    if namespace:
        params["packageNamespace"] = namespace
    return params


def _read_uri(fmt: str, package: str, version: str, namespace: str | None = None) -> str:
    if fmt == "npm":
        short = package.split("/")[-1]
        return f"/npm/{package}/-/{short}-{version}.tgz"
    if fmt == "pypi":
        return f"/pypi/simple/{package}/{package.replace('-', '_')}-{version}-py3-none-any.whl"
    group = (namespace or "").replace(".", "/")
    return f"/maven/{group}/{package}/{version}/{package}-{version}.jar"


class Day:
    """Collects the day's records; `write()` lays them out as CloudTrail log files."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.rng = random.Random(SEED)

    def at(self, hour: float, jitter_minutes: float = 0.0) -> datetime:
        minutes = hour * 60 + self.rng.uniform(0, jitter_minutes)
        return DAY + timedelta(minutes=min(minutes, 24 * 60 - 0.02))

    def add(self, rec: Record) -> Record:
        self.records.append(rec)
        return rec

    # -- actors ---------------------------------------------------------------------------

    def ci_build(self, start: datetime, *, release: str | None) -> None:
        """A CodeBuild project: token, dependency installs, maybe a publish."""
        session = f"AWSCodeBuild-{new_id(self.rng)}"
        who = assumed_role(CENTRAL, "ci-publisher", session, created=start - timedelta(seconds=20))
        ip = VPN_V4 + str(self.rng.choice([10, 11, 12]))
        t = start
        self.add(record("GetAuthorizationToken", who, t, ip, CLI_UAS[1],
                        _token_params("acme", CENTRAL, self.rng.choice([900, 1800]), "api"),
                        response={"authorizationToken": "HIDDEN_DUE_TO_SECURITY_REASONS",
                                  "expiration": iso(t + timedelta(minutes=15))},
                        rng=self.rng))
        self.add(record("GetRepositoryEndpoint", who, t + timedelta(seconds=2), ip, CLI_UAS[1],
                        {"domain": "acme", "domainOwner": CENTRAL, "repository": "internal",
                         "format": "npm"},
                        response={"repositoryEndpoint":
                                  f"https://acme-{CENTRAL}.d.codeartifact.us-west-2.amazonaws.com"
                                  "/npm/internal/"}, rng=self.rng))
        t += timedelta(seconds=8)
        for package, version in self.rng.sample(NPM_PACKAGES, self.rng.randint(4, 9)):
            t += timedelta(milliseconds=self.rng.randint(80, 900))
            self.add(record("ReadFromRepository", who, t, ip, NPM_UAS[1],
                            _read_params("acme", CENTRAL, "internal", "npm", package, version),
                            additional={"httpMethod": "GET",
                                        "requestUri": _read_uri("npm", package, version)},
                            domain_host=("acme", CENTRAL), rng=self.rng))
        if release == "npm":
            t += timedelta(minutes=self.rng.randint(3, 7))
            name, version = "@acme/ui-kit", f"3.14.{self.rng.randint(1, 60)}"
            self.add(record("PublishPackageVersion", who, t, ip, NPM_UAS[1],
                            {"domainName": "acme", "domainOwner": CENTRAL,
                             "repositoryName": "internal", "packageFormat": "npm",
                             "packageNamespace": "acme", "packageName": "ui-kit",
                             "packageVersion": version},
                            additional={"httpMethod": "PUT", "requestUri": f"/npm/{name}"},
                            domain_host=("acme", CENTRAL), rng=self.rng))
        elif release == "maven":
            t += timedelta(minutes=self.rng.randint(3, 7))
            version = f"5.3.{self.rng.randint(1, 40)}"
            base = "/maven/internal/com/acme/payments/payments-api"
            for asset in (f"payments-api-{version}.jar", f"payments-api-{version}.pom"):
                t += timedelta(seconds=1)
                self.add(record("PublishPackageVersion", who, t, ip, MAVEN_UA,
                                {"domainName": "acme", "domainOwner": CENTRAL,
                                 "repositoryName": "internal", "packageFormat": "maven",
                                 "packageNamespace": "com.acme.payments",
                                 "packageName": "payments-api", "packageVersion": version},
                                additional={"httpMethod": "PUT",
                                            "requestUri": f"{base}/{version}/{asset}"},
                                domain_host=("acme", CENTRAL), rng=self.rng))
            t += timedelta(seconds=1)
            self.add(record("PutPackageMetadata", who, t, ip, MAVEN_UA,
                            {"domainName": "acme", "domainOwner": CENTRAL,
                             "repositoryName": "internal", "packageFormat": "maven",
                             "packageNamespace": "com.acme.payments",
                             "packageName": "payments-api"},
                            additional={"httpMethod": "PUT",
                                        "requestUri": f"{base}/maven-metadata.xml"},
                            domain_host=("acme", CENTRAL), rng=self.rng))

    def gha_release(self, start: datetime) -> None:
        """A self-hosted GitHub Actions runner (in the VPC) publishing a Python package."""
        who = assumed_role(CENTRAL, "github-actions-release", "GitHubActions", created=start,
                           web_identity="token.actions.githubusercontent.com")
        ip = VPC_V4 + f"{self.rng.randint(1, 3)}.{self.rng.randint(10, 250)}"
        t = start + timedelta(seconds=3)
        self.add(record("GetAuthorizationToken", who, t, ip, SDK_UA,
                        _token_params("acme", CENTRAL, 3600, "api"),
                        response={"authorizationToken": "HIDDEN_DUE_TO_SECURITY_REASONS",
                                  "expiration": iso(t + timedelta(hours=1))},
                        vpce=VPCE_USW2, rng=self.rng))
        for package, version in self.rng.sample(PYPI_PACKAGES, 4):
            t += timedelta(milliseconds=self.rng.randint(100, 700))
            self.add(record("ReadFromRepository", who, t, ip, PIP_UA,
                            _read_params("acme", CENTRAL, "pypi-store", "pypi", package, version),
                            additional={"httpMethod": "GET",
                                        "requestUri": _read_uri("pypi", package, version)},
                            vpce=VPCE_USW2, domain_host=("acme", CENTRAL), rng=self.rng))
        t += timedelta(minutes=4)
        version = f"0.9.{self.rng.randint(4, 30)}"
        self.add(record("PublishPackageVersion", who, t, ip, TWINE_UA,
                        {"domainName": "acme", "domainOwner": CENTRAL,
                         "repositoryName": "release", "packageFormat": "pypi",
                         "packageName": "acme-billing-sdk", "packageVersion": version},
                        additional={"httpMethod": "POST", "requestUri": "/pypi/release/"},
                        vpce=VPCE_USW2, domain_host=("acme", CENTRAL), rng=self.rng))

    def developer_session(self, dev: str, start: datetime, *, region: str = "us-west-2") -> None:
        """`aws codeartifact login`, then a morning of installs, from a trusted network."""
        domain = "acme" if region == "us-west-2" else "acme-eu"
        who = assumed_role(CENTRAL, SSO_DEV_ROLE, f"{dev}@example.com", path=SSO_PATH,
                           created=start - timedelta(minutes=2))
        where = self.rng.random()
        if where < 0.5:
            ip = OFFICE_V4 + str(self.rng.randint(20, 220))
        elif where < 0.8:
            ip = VPN_V4 + str(self.rng.randint(64, 126))
        else:
            ip = OFFICE_V6 + f"{self.rng.randint(1, 9)}::{self.rng.randint(16, 4000):x}"
        cli = self.rng.choice([CLI_UAS[0], CLI_UAS[2]])
        npm = self.rng.choice([NPM_UAS[0], NPM_UAS[2]])
        t = start
        self.add(record("GetAuthorizationToken", who, t, ip, cli,
                        _token_params(domain, CENTRAL, 3600, self.rng.choice(["api", "client"])),
                        response={"authorizationToken": "HIDDEN_DUE_TO_SECURITY_REASONS",
                                  "expiration": iso(t + timedelta(hours=1))},
                        region=region, rng=self.rng))
        for _ in range(self.rng.randint(2, 4)):  # a few installs over the morning
            t += timedelta(minutes=self.rng.randint(4, 50))
            kind = self.rng.choice(["npm", "npm", "pypi", "maven"])
            if kind == "npm":
                picks = [(p, v, None) for p, v in self.rng.sample(NPM_PACKAGES, 6)]
                ua, repo = npm, "internal"
            elif kind == "pypi":
                picks = [(p, v, None) for p, v in self.rng.sample(PYPI_PACKAGES, 4)]
                ua, repo = PIP_UA, "pypi-store"
            else:
                picks = [(a, v, g) for g, a, v in self.rng.sample(MAVEN_PACKAGES, 3)]
                ua, repo = MAVEN_UA, "maven-central-store"
            for package, version, namespace in picks:
                t += timedelta(milliseconds=self.rng.randint(60, 600))
                self.add(record("ReadFromRepository", who, t, ip, ua,
                                _read_params(domain, CENTRAL, repo, kind, package, version,
                                             namespace),
                                additional={"httpMethod": "GET",
                                            "requestUri": _read_uri(kind, package, version,
                                                                    namespace)},
                                region=region, domain_host=(domain, CENTRAL), rng=self.rng))
        if self.rng.random() < 0.5:  # poke around with the API
            t += timedelta(minutes=self.rng.randint(5, 30))
            package, version = self.rng.choice(NPM_PACKAGES[:7])
            params = {"domain": domain, "domainOwner": CENTRAL, "repository": "internal",
                      "format": "npm", "package": package}
            self.add(record("ListPackageVersions", who, t, ip, cli, params,
                            response=None, region=region, rng=self.rng))
            self.add(record("DescribePackageVersion", who, t + timedelta(seconds=9), ip, cli,
                            {**params, "packageVersion": version}, region=region, rng=self.rng))
            self.add(record("GetPackageVersionAsset", who, t + timedelta(seconds=20), ip, cli,
                            {**params, "packageVersion": version,
                             "asset": f"{package.split('/')[-1]}-{version}.tgz"},
                            region=region, rng=self.rng))
        if self.rng.random() < 0.6:  # the console
            t += timedelta(minutes=self.rng.randint(5, 40))
            for name, params in (
                ("ListDomains", {}),
                ("ListRepositoriesInDomain", {"domain": domain, "domainOwner": CENTRAL}),
                ("DescribeRepository", {"domain": domain, "domainOwner": CENTRAL,
                                        "repository": "internal"}),
                ("ListPackages", {"domain": domain, "domainOwner": CENTRAL,
                                  "repository": "internal", "maxResults": 50}),
                ("GetPackageVersionReadme", {"domain": domain, "domainOwner": CENTRAL,
                                             "repository": "internal", "format": "npm",
                                             "package": "ui-kit", "namespace": "acme",
                                             "packageVersion": "3.14.0"}),
            ):
                t += timedelta(seconds=self.rng.randint(2, 40))
                self.add(record(name, who, t, ip, CONSOLE_UA, params, console=True,
                                region=region, rng=self.rng))
        if self.rng.random() < 0.2:  # a call the developer role may not make
            t += timedelta(minutes=3)
            self.add(record("DescribeDomain", who, t, ip, cli,
                            {"domain": domain, "domainOwner": CENTRAL},
                            error="AccessDeniedException", region=region, rng=self.rng))

    def shared_build(self, start: datetime) -> None:
        """A build in the shared-services account reading from acme across accounts."""
        who = assumed_role(SHARED, "shared-build", f"AWSCodeBuild-{new_id(self.rng)}",
                           created=start - timedelta(seconds=15))
        ip = VPN_V4 + str(self.rng.choice([20, 21]))
        t = start
        token = record("GetAuthorizationToken", who, t, ip, CLI_UAS[1],
                       _token_params("acme", CENTRAL, 900, "api"),
                       response={"authorizationToken": "HIDDEN_DUE_TO_SECURITY_REASONS",
                                 "expiration": iso(t + timedelta(minutes=15))},
                       shared_event_id=new_id(self.rng), rng=self.rng)
        self.add(token)
        self.add(copy_for(token, CENTRAL, self.rng))
        for group, artifact, version in self.rng.sample(MAVEN_PACKAGES, 3):
            t += timedelta(milliseconds=self.rng.randint(100, 800))
            read = record("ReadFromRepository", who, t, ip, MAVEN_UA,
                          _read_params("acme", CENTRAL, "maven-central-store", "maven", artifact,
                                       version, group),
                          additional={"httpMethod": "GET",
                                      "requestUri": _read_uri("maven", artifact, version, group)},
                          shared_event_id=new_id(self.rng), domain_host=("acme", CENTRAL),
                          rng=self.rng)
            self.add(read)
            self.add(copy_for(read, CENTRAL, self.rng))

    def inventory(self, start: datetime) -> None:
        """An hourly asset-inventory integration: Describe/List/Get only."""
        who = assumed_role(CENTRAL, "inventory-readonly", "inventory-scan", created=start)
        ip = "192.0.2.77"  # the vendor's egress; no rule reads it for these calls
        t = start
        calls = [
            ("ListDomains", {}),
            ("DescribeDomain", {"domain": "acme", "domainOwner": CENTRAL}),
            ("GetDomainPermissionsPolicy", {"domain": "acme", "domainOwner": CENTRAL}),
            ("ListRepositories", {}),
            ("ListTagsForResource",
             {"resourceArn": f"arn:aws:codeartifact:us-west-2:{CENTRAL}:repository/acme/internal"}),
            ("GetRepositoryPermissionsPolicy",
             {"domain": "acme", "domainOwner": CENTRAL, "repository": "maven-central-store"}),
            ("ListPackageGroups", {"domain": "acme", "domainOwner": CENTRAL}),
        ]
        for name, params in calls:
            t += timedelta(seconds=self.rng.uniform(0.2, 2))
            self.add(record(name, who, t, ip, GO_SDK_UA, params, rng=self.rng))

    def admin_afternoon(self, start: datetime) -> None:
        """A platform admin (MFA) doing routine repository housekeeping."""
        who = assumed_role(CENTRAL, "AWSReservedSSO_PlatformAdmin_9f8e7d6c5b4a3210",
                           "jordan.miles@example.com", path=SSO_PATH, mfa=True,
                           created=start - timedelta(minutes=5))
        ip = OFFICE_V4 + "45"
        t = start
        base = {"domain": "acme", "domainOwner": CENTRAL}
        policy = {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "SharedServicesRead",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{SHARED}:root"},
                "Action": ["codeartifact:ReadFromRepository", "codeartifact:DescribePackageVersion",
                           "codeartifact:ListPackageVersions"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORG_ID}},
            }],
        }
        steps = [
            ("DescribeRepository", {**base, "repository": "staging"}, None),
            ("ListPackageVersions", {**base, "repository": "staging", "format": "npm",
                                     "namespace": "acme", "package": "auth-client"}, None),
            ("CopyPackageVersions", {**base, "sourceRepository": "staging",
                                     "destinationRepository": "release", "format": "npm",
                                     "namespace": "acme", "package": "auth-client",
                                     "versions": ["2.2.1"], "allowOverwrite": False,
                                     "includeFromUpstream": False}, None),
            ("UpdatePackageVersionsStatus", {**base, "repository": "staging", "format": "npm",
                                             "namespace": "acme", "package": "auth-client",
                                             "versions": ["2.2.1"], "targetStatus": "Published",
                                             "expectedStatus": "Unfinished"}, None),
            ("PutPackageOriginConfiguration", {**base, "repository": "internal", "format": "npm",
                                               "namespace": "acme", "package": "billing-widgets",
                                               "restrictions": {"publish": "ALLOW",
                                                                "upstream": "BLOCK"}}, None),
            ("CreatePackageGroup", {**base, "packageGroup": "/npm/acme/*",
                                    "contactInfo": "platform@example.com"}, None),
            ("UpdatePackageGroupOriginConfiguration",
             {**base, "packageGroup": "/npm/acme/*",
              "restrictions": {"EXTERNAL_UPSTREAM": "BLOCK", "PUBLISH": "ALLOW"}}, None),
            ("GetRepositoryPermissionsPolicy", {**base, "repository": "maven-central-store"},
             None),
            ("PutRepositoryPermissionsPolicy", {**base, "repository": "maven-central-store",
                                                "policyDocument": json.dumps(policy)}, None),
            ("TagResource", {"resourceArn": f"arn:aws:codeartifact:us-west-2:{CENTRAL}:"
                                            "repository/acme/release",
                             "tags": [{"key": "cost-center", "value": "platform"}]}, None),
            ("CreateRepository", {**base, "repository": "sandbox-jordan",
                                  "description": "scratch repository"}, None),
            ("DeleteRepository", {**base, "repository": "sandbox-legacy"},
             "AccessDeniedException"),  # blocked by an SCP: a failed call is not a deletion
        ]
        for name, params, error in steps:
            t += timedelta(seconds=self.rng.randint(20, 240))
            self.add(record(name, who, t, ip, CLI_UAS[0].replace("codeartifact.login",
                                                                 "codeartifact"),
                            params, error=error, rng=self.rng))

    # -- the day ---------------------------------------------------------------------------

    def build(self) -> None:
        for quarter in range(96):  # CodeBuild every 15 minutes, releases now and then
            hour = quarter / 4
            release = None
            roll = self.rng.random()
            if 7 <= hour < 19 and roll < 0.15:
                release = "npm"
            elif 7 <= hour < 19 and roll < 0.25:
                release = "maven"
            self.ci_build(self.at(hour, 10), release=release)
        for hour in (9.5, 11.25, 14.0, 16.75):
            self.gha_release(self.at(hour, 20))
        for i, dev in enumerate(DEVELOPERS):
            region = "eu-west-1" if dev in ("tom.becker", "olusegun.adeyemi") else "us-west-2"
            self.developer_session(dev, self.at(7.5 + i * 0.6, 30), region=region)
            if i % 2 == 0:  # an afternoon session for some
                self.developer_session(dev, self.at(13.0 + i * 0.5, 30), region=region)
        for hour in range(0, 24, 2):
            self.shared_build(self.at(hour + 0.3, 40))
        for hour in range(24):
            self.inventory(self.at(hour + 0.05, 2))
        self.admin_afternoon(self.at(15.2, 10))
        # a developer asks for a package version that does not exist
        who = assumed_role(CENTRAL, SSO_DEV_ROLE, "wei.chen@example.com", path=SSO_PATH,
                           created=self.at(10))
        self.add(record("ReadFromRepository", who, self.at(10.4), OFFICE_V4 + "88", NPM_UAS[0],
                        _read_params("acme", CENTRAL, "internal", "npm", "lodahs", "4.17.21"),
                        error="ResourceNotFoundException",
                        error_message="Package lodahs not found in repository internal",
                        additional={"httpMethod": "GET",
                                    "requestUri": "/npm/lodahs/-/lodahs-4.17.21.tgz"},
                        domain_host=("acme", CENTRAL), rng=self.rng))

    def write(self, out: Path = OUT) -> dict[Path, int]:
        """One gzipped log file per (recipient account, region, hour)."""
        buckets: dict[tuple[str, str, int], list[Record]] = defaultdict(list)
        for rec in self.records:
            hour = int(rec["eventTime"][11:13])
            buckets[(rec["recipientAccountId"], rec["awsRegion"], hour)].append(rec)
        if out.exists():
            shutil.rmtree(out)
        written: dict[Path, int] = {}
        names = random.Random(SEED + 1)
        for (account, region, hour), records in sorted(buckets.items()):
            names.shuffle(records)  # CloudTrail promises no order within or across files
            delivered = DAY + timedelta(hours=hour, minutes=55)
            stamp = delivered.strftime("%Y%m%dT%H%MZ")
            suffix = "".join(names.choice(string.ascii_letters + string.digits)
                             for _ in range(16))
            folder = out / account / "CloudTrail" / region / DAY.strftime("%Y/%m/%d")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{account}_CloudTrail_{region}_{stamp}_{suffix}.json.gz"
            body = json.dumps({"Records": records}, separators=(",", ":")).encode()
            buffer = io.BytesIO()
            with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as handle:
                handle.write(body)
            path.write_bytes(buffer.getvalue())
            written[path] = len(records)
        return written


def main() -> None:
    day = Day()
    day.build()
    written = day.write()
    print(f"{sum(written.values())} records in {len(written)} files under {OUT}")


if __name__ == "__main__":
    main()
