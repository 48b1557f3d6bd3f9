"""`trailguard validate`: every problem of every rule file, each with its file and line."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.cli import run_cli

BROKEN = {
    "a.yml": """\
id: token-odd
title: Token from an odd place
severity: hi
condition: lenght(sourceIPAddress) > `3`
dedup: 1x
bogus: 1
""",
    "b.yml": """\
id: Bad Id
title: [not, a, string]
severity: low
condition: "eventName == 'X' &&"
threshold: {count: 0, window: 10m, extra: 1}
---
id: arity
title: wrong arity
severity: low
condition: contains(eventName)
first_seen: {value: sourceIPAddress, remember: soon}
""",
    "c.yml": """\
id: dup
title: first
severity: low
condition: eventName == 'A'
""",
    "nested/d.yaml": """\
id: dup
title: second
severity: low
condition: ip_in(sourceIPAddress, 'trusted_netwrks') && list(x)
tests:
  - name: no source
    expect: true
""",
    "e.yml": "id: [unclosed\n",
}

EXPECTED = [
    ("a.yml", 3, "severity"), ("a.yml", 4, "condition"), ("a.yml", 5, "dedup"),
    ("a.yml", 6, "bogus"), ("b.yml", 1, "id"), ("b.yml", 2, "title"),
    ("b.yml", 4, "condition"), ("b.yml", 5, "threshold"), ("b.yml", 10, "condition"),
    ("b.yml", 11, "first_seen"), ("nested/d.yaml", 1, "id"), ("nested/d.yaml", 4, "condition"),
    ("nested/d.yaml", 6, "tests"), ("e.yml", 2, "yaml"),
]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def test_validate_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    """All problems of all files appear in one run, as PATH:LINE: field: message; exit 1."""
    _write(tmp_path, BROKEN)
    result = run_cli("validate", "-r", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    found = set()
    for line in result.stderr.splitlines():
        parsed = re.match(rf"{re.escape(str(tmp_path))}/(\S+):(\d+): (\w+): ", line)
        if parsed:
            found.add((parsed.group(1), int(parsed.group(2)), parsed.group(3)))
    for expected in EXPECTED:
        assert expected in found, f"missing {expected} in:\n{result.stderr}"


def test_validate_names_the_problem(tmp_path: Path) -> None:
    """Messages say what is wrong: unknown function, arity, list name, duplicate id."""
    _write(tmp_path, BROKEN)
    stderr = run_cli("validate", "-r", str(tmp_path)).stderr
    assert "unknown function 'lenght'" in stderr
    assert "contains() takes 2 argument(s), got 1" in stderr
    assert "unknown list 'trusted_netwrks'" in stderr
    assert "duplicate id 'dup' (first defined at" in stderr
    assert "list() takes a list name as a string literal" in stderr


def test_validate_warns_on_fields_cloudtrail_never_has(tmp_path: Path) -> None:
    """Misspelt CloudTrail fields are warnings with a suggestion; the set is still valid."""
    _write(tmp_path, {"w.yml": """\
id: typo
title: typo
severity: low
condition: >-
  sourceIpAddress == '1.2.3.4' && userIdenity.arn != null
  && requestParameter.x == 'y' && requestParameters.anything.goes == 'ok'
group_by: userIdentity.sessionContext.sessionIssuer.arn
"""})
    result = run_cli("validate", "-r", str(tmp_path))
    assert result.returncode == 0, result.stderr
    # the line of the field inside the block scalar, not of the `condition:` key (line 4)
    assert f"{tmp_path}/w.yml:5: condition: warning: field 'sourceIpAddress'" in result.stderr
    assert f"{tmp_path}/w.yml:6: condition: warning: field 'requestParameter'" in result.stderr
    assert "did you mean 'sourceIPAddress'?" in result.stderr
    assert "'userIdenity'" in result.stderr and "'requestParameter'" in result.stderr
    assert "anything" not in result.stderr
    assert "field 'null'" in result.stderr  # `null` is a field name; the literal is `null`
    assert "4 warnings" in result.stderr


def test_validate_accepts_config_lists_and_checks_outputs(tmp_path: Path) -> None:
    """Lists defined in the config are known; outputs must be defined by the config."""
    _write(tmp_path, {
        "rules/r.yml": """\
id: office
title: office
severity: low
condition: in_list(userIdentity.arn, 'break_glass')
outputs: [pager]
""",
        "trailguard.yml": "rules: [rules/]\nlists: {break_glass: [arn:x]}\n"
                          "outputs: {console: {type: stdout}}\n",
    })
    result = run_cli("validate", "-c", str(tmp_path / "trailguard.yml"))
    assert result.returncode == 1
    assert "r.yml:5: outputs: unknown output(s) pager" in result.stderr
    assert "break_glass" not in result.stderr


def test_validate_config_errors_exit_2(tmp_path: Path) -> None:
    """A config naming a missing environment variable is a usage error naming it."""
    config = tmp_path / "trailguard.yml"
    config.write_text("outputs:\n  slack: {type: slack, webhook_url: '${NO_SUCH_HOOK}'}\n")
    result = run_cli("validate", "-c", str(config))
    assert result.returncode == 2
    assert f"{config}:2" in result.stderr and "NO_SUCH_HOOK" in result.stderr


def test_validate_shipped_pack_is_clean() -> None:
    """The shipped pack loads with no errors and no warnings with its lists configured."""
    result = run_cli("validate", "-c", "examples/trailguard.yml")
    assert result.returncode == 0, result.stderr
    assert "no errors, 0 warnings" in result.stderr


def test_validate_warns_about_lists_the_config_does_not_define() -> None:
    """Without a config the pack's lists are empty: validate says so, with file and line."""
    result = run_cli("validate")
    assert result.returncode == 0, result.stderr
    assert "codeartifact-token-unknown-network.yml:" in result.stderr
    assert "list 'trusted_networks' is not defined in the config" in result.stderr
