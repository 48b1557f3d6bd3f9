"""`trailguard validate` through the real CLI: mistakes that parse, each at its own line."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Result, run_cli


def _validate(tmp_path: Path, text: str) -> tuple[Result, str]:
    path = tmp_path / "rule.yml"
    path.write_text(text)
    return run_cli("validate", "-r", str(path)), str(path)


def test_validate_literal_operand_of_or_is_an_error_with_a_hint(tmp_path: Path) -> None:
    """`eventName == 'A' || 'B'` is true for every record: an error at the line of 'B'."""
    result, path = _validate(tmp_path, """\
id: either
title: Either
severity: low
condition: >-
  eventSource == 'codeartifact.amazonaws.com'
  && (eventName == 'PublishPackageVersion' || 'PutPackageMetadata')
""")
    assert result.returncode == 1, result.stderr
    assert f"{path}:6: condition: `eventName == 'PublishPackageVersion' || " \
           "'PutPackageMetadata'` is true for every record" in result.stderr
    assert "contains(['PublishPackageVersion', 'PutPackageMetadata'], eventName)" \
        in result.stderr


def test_validate_accepts_a_literal_default_inside_a_value(tmp_path: Path) -> None:
    """`to_number(a || `43200`)` is a fallback value, not a truth test: no problem."""
    result, _ = _validate(tmp_path, """\
id: long
title: Long
severity: low
condition: "to_number(requestParameters.durationSeconds || `43200`) > `3600`"
""")
    assert result.returncode == 0, result.stderr
    assert "no errors, 0 warnings" in result.stderr


def test_validate_hints_at_quoted_identifiers_and_bare_keywords(tmp_path: Path) -> None:
    """A double-quoted "string" is a field lookup and bare true/null are fields: the
    warning says what to write instead."""
    result, path = _validate(tmp_path, """\
id: quoted
title: Quoted
severity: low
condition: >-
  eventName == "GetAuthorizationToken"
  && readOnly == true
  && errorCode == null
""")
    assert result.returncode == 0, result.stderr
    assert f"{path}:5: condition: warning: field 'GetAuthorizationToken'" in result.stderr
    assert "use 'GetAuthorizationToken' in single quotes for a string" in result.stderr
    assert f"{path}:6: condition: warning: field 'true'" in result.stderr
    assert "use `true` for the literal" in result.stderr
    assert f"{path}:7: condition: warning: field 'null'" in result.stderr
    assert "use `null` for the literal" in result.stderr


def test_validate_points_at_the_line_inside_a_block_condition(tmp_path: Path) -> None:
    """Errors inside a multi-line condition name the line of the problem, not of the key."""
    result, path = _validate(tmp_path, """\
id: lines
title: Lines
severity: low
condition: >-
  eventSource == 'codeartifact.amazonaws.com'
  && eventName == 'GetAuthorizationToken'
  && lenght(userIdentity.arn) > `3`
  && ip_in(sourceIPAddress, 'no_such_list')
""")
    assert result.returncode == 1
    assert f"{path}:7: condition: unknown function 'lenght'" in result.stderr
    assert f"{path}:8: condition: unknown list 'no_such_list'" in result.stderr


def test_validate_points_at_a_syntax_error_line(tmp_path: Path) -> None:
    """A syntax error on the third line of a condition is reported there."""
    result, path = _validate(tmp_path, """\
id: syntax
title: Syntax
severity: low
condition: |
  eventSource == 'codeartifact.amazonaws.com'
  && eventName == 'GetAuthorizationToken'
  && sourceIPAddress == == '1.2.3.4'
""")
    assert result.returncode == 1
    assert f"{path}:7: condition: invalid JMESPath" in result.stderr


def test_validate_reports_every_problem_of_a_field(tmp_path: Path) -> None:
    """`count: 0` no longer hides `window: 0s`; first_seen's two durations both show."""
    result, path = _validate(tmp_path, """\
id: all
title: All
severity: low
condition: eventName == 'GetAuthorizationToken'
threshold:
  count: 0
  window: 0s
first_seen: {value: sourceIPAddress, remember: 1x, learn: 2y}
""")
    assert result.returncode == 1
    assert f"{path}:6: threshold: count must be a whole number >= 1" in result.stderr
    assert f"{path}:7: threshold: window:" in result.stderr
    assert f"{path}:8: first_seen: remember:" in result.stderr
    assert f"{path}:8: first_seen: learn:" in result.stderr


def test_validate_rejects_an_unclosed_summary_field(tmp_path: Path) -> None:
    """`{userIdentity.arn` without its `}` used to pass and render literally."""
    result, path = _validate(tmp_path, """\
id: summary
title: Summary
severity: low
condition: eventName == 'GetAuthorizationToken'
summary: "Token for {userIdentity.arn from {sourceIPAddress}"
""")
    assert result.returncode == 1
    assert f"{path}:5: summary: unclosed '{{'" in result.stderr


def test_validate_points_at_the_group_by_item(tmp_path: Path) -> None:
    """A misspelt field in the third item of a group_by list is reported at that item."""
    result, path = _validate(tmp_path, """\
id: grouped
title: Grouped
severity: low
condition: eventName == 'GetAuthorizationToken'
group_by:
  - userIdentity.arn
  - requestParameters.domainName
  - sourceIpAddress
""")
    assert result.returncode == 0, result.stderr
    assert f"{path}:8: group_by: warning: field 'sourceIpAddress'" in result.stderr
