"""The official JMESPath compliance vectors pass with trailguard's functions registered.

Registering custom functions must not change any standard behaviour, in either engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.conditions.evaluator import ENGINES, compile_expression
from engine.conditions.functions import TrailguardFunctions

VECTORS = Path(__file__).parent / "compliance"
FUNCTIONS = TrailguardFunctions({"trusted_networks": ["10.0.0.0/8"]})


def _cases() -> list[Any]:
    cases = []
    for path in sorted(VECTORS.glob("*.json")):
        for group in json.loads(path.read_text()):
            for number, case in enumerate(group["cases"]):
                if "bench" in case:
                    continue
                cases.append(pytest.param(group["given"], case, id=f"{path.stem}-{number}"))
    return cases


CASES = _cases()


def test_compliance_vectors_are_all_present() -> None:
    """Guard against a silently empty suite: the official set has 800+ cases."""
    assert len(CASES) > 800


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("given", "case"), CASES)
def test_compliance_case(engine: str, given: Any, case: dict[str, Any]) -> None:
    """Each vector gives its expected result or error with our functions registered."""
    expression = case["expression"]
    if "error" in case:
        with pytest.raises(Exception):  # noqa: B017 - jmespath raises ValueError for step 0
            compile_expression(expression, FUNCTIONS, engine)(given)
        return
    assert compile_expression(expression, FUNCTIONS, engine)(given) == case["result"]
