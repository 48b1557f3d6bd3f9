"""What every command needs first: the config, the function table and the checked rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.conditions.functions import TrailguardFunctions
from engine.config import Config, load_config
from engine.pack import shipped_rules
from engine.rules import RuleSet, load_rules


@dataclass(frozen=True)
class Setup:
    config: Config
    functions: TrailguardFunctions
    rule_paths: tuple[str, ...]


def prepare(config_path: str | None, rule_paths: Sequence[str] | None,
            delivery: bool = False) -> Setup:
    """Config (or defaults) and the rule paths: `-r` wins, then the config, then the pack.
    `delivery` checks the config's outputs and routes too (validate, run)."""
    config = load_config(config_path, delivery=delivery) if config_path else Config()
    paths = tuple(rule_paths or config.rules or (str(shipped_rules()),))
    return Setup(config, TrailguardFunctions(config.lists), paths)


def rules_of(setup: Setup) -> RuleSet:
    """Load the rules; raises RuleError with every problem."""
    outputs = set(setup.config.outputs) if setup.config.path else None
    return load_rules([Path(p) for p in setup.rule_paths], setup.functions,
                      setup.config.known_lists, outputs, defined_lists=setup.config.lists)
