"""The `trailguard` command line: scan, validate, test, explain.

Exit status (SPEC §5): 0 done; 1 failures found (tests failed, rules invalid, an input
unreadable); 2 usage or config error. Every command reports problems as text a person can act
on, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from engine import __version__, jsonsafe
from engine.conditions.evaluator import ENGINES
from engine.config import Config
from engine.errors import ConfigError, RuleError, StateError
from engine.model import Alert
from engine.redaction import redact

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Command | None = getattr(args, "command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return command(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"trailguard: config error: {problem}", file=sys.stderr)
        if len(exc.problems) > 1:
            print(f"{len(exc.problems)} config errors", file=sys.stderr)
        return EXIT_USAGE
    except StateError as exc:  # once under way: not the config's fault (redacted, no URL secret)
        print(f"trailguard: state store unavailable: {exc}", file=sys.stderr)
        return EXIT_FAILURES
    except RuleError as exc:
        _print_problems(exc.problems)
        return EXIT_FAILURES
    except BrokenPipeError:  # `trailguard scan ... | head` is normal use
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trailguard", description=(
        "Detection-as-code alerting for AWS CodeArtifact activity in CloudTrail."))
    parser.add_argument("--version", action="version", version=f"trailguard {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    scan = _command(sub, "scan", "evaluate rules over files, directories or stdin", _scan)
    scan.add_argument("paths", nargs="*", metavar="PATH", help="files, directories, or - for stdin")
    scan.add_argument("--state", help="state URL (memory://, sqlite:///PATH, redis://HOST:PORT/DB)")
    scan.add_argument("--format", choices=("jsonl", "text"), default=None,
                      help="the format of alerts on stdout (default jsonl), also for the "
                           "config's stdout outputs")
    scan.add_argument("--dry-run", action="store_true",
                      help="the config's rules, lists and suppressions, but alerts go to stdout "
                           "only and nothing is written to its state (memory:// unless --state)")
    scan.add_argument("--report", metavar="FILE.json|FILE.html",
                      help="write what the rules would have done: per rule and day, top groups, "
                           "suppressions")
    scan.add_argument("--engine", choices=ENGINES, default="compiled",
                      help="how conditions run: compiled to Python, or jmespath's interpreter")
    scan.add_argument("--workers", type=int, default=None, metavar="N",
                      help="processes that parse and evaluate; alerts are the same as with one. "
                           "Default: the cores")

    _command(sub, "validate", "check rules and print every problem", _validate)

    test = _command(sub, "test", "run the tests inside rule files", _test)
    test.add_argument("-k", dest="pattern", help="only rules or tests whose name contains this")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    test.add_argument("--engine", choices=ENGINES, default="compiled")

    explain = _command(sub, "explain", "show why a rule matches an event or not", _explain)
    explain.add_argument("--rule", required=True, help="rule id")
    explain.add_argument("event_file", metavar="EVENT_FILE")

    from engine import cli_daemon, cli_delivery

    cli_delivery.register(sub)
    cli_daemon.register(sub)

    schema = sub.add_parser("schema", help="print the JSON Schema of a rule file (for editors)",
                            description="Print the JSON Schema (draft 2020-12) of a rule "
                                        "document, for YAML language servers.")
    schema.set_defaults(command=_schema)

    docs = _command(sub, "docs", "write the rule catalogue and API coverage (docs/rules.md)", _docs)
    docs.add_argument("--output", default="-", help="file to write, or - for stdout")
    docs.add_argument("--check", action="store_true",
                      help="exit 1 if --output is not current (for CI)")
    return parser


def _command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str,
             handler: Command) -> argparse.ArgumentParser:
    command = sub.add_parser(name, help=text, description=text)
    command.add_argument("-c", "--config", help="trailguard.yml")
    command.add_argument("-r", "--rules", action="append", metavar="RULES",
                         help="rule file or directory (repeatable); default: the config's, "
                              "else the shipped pack")
    command.set_defaults(command=handler)
    return command


def _scan(args: argparse.Namespace) -> int:
    from engine.conditions.evaluator import Evaluator
    from engine.decide.decider import new_decider
    from engine.inputs.files import STDIN, Refs, iter_paths, walk
    from engine.scan.parallel import parallel_scan
    from engine.scan.pipeline import ScanStats, run_scan, tune_gc
    from engine.scan.report import Progress, summary
    from engine.startup import prepare, rules_of
    from engine.state import open_store
    from engine.stdout import guard
    from engine.suppressor import suppressor_for

    tune_gc()
    stdout = guard()  # `scan ... | head`: a reader that stops is normal, not a failure
    if args.report:
        from engine.scan.backtest import Backtest, check_target, write_report

        check_target(args.report)
    setup = prepare(args.config, args.rules)
    paths = _scan_paths(args.paths, setup.config.sources)
    ruleset = rules_of(setup)
    evaluator = Evaluator(ruleset.rules, setup.functions, args.engine)
    suppressor = suppressor_for(setup.config, setup.functions, ruleset.rules, args.engine)
    lateness = setup.config.allowed_lateness
    state_url = args.state or ("memory://" if args.dry_run else setup.config.state) or "memory://"
    try:
        store = open_store(state_url)
    except (StateError, OSError) as exc:  # cannot even start: the URL is the thing to check
        raise ConfigError(str(exc) if isinstance(exc, StateError) else
                          f"state {state_url}: {exc}", "--state") from None
    progress = Progress(_total_bytes(paths))
    sink = _AlertSink(setup.config, state_url, args.format, deliver=not args.dry_run)
    backtest = Backtest() if args.report else None
    send = backtest.wrap(sink.send) if backtest else sink.send
    # The cores: N processes, the deciding parent among them, so none waits for a core. On
    # 2 cores, 2 give about 2x one with the pack + 200 rules, stateful or not
    # (bench/throughput.py (f)); on many cores the parent's serial deciding is the limit.
    # Files are scanned a file at a time, then decided, even by one process: 10% faster than
    # record by record. Stdin is scanned and decided by the same code, a batch (BATCH records)
    # at a time as it is read, so alerts come as it flows.
    workers = args.workers or os.cpu_count() or 1
    stats = ScanStats(span=[float("inf"), float("-inf")] if backtest else None)
    try:
        with store:
            decider = new_decider(evaluator, lateness, store)
            if STDIN not in paths:  # files in eventTime order, walked lazily (SPEC §7)
                stats = parallel_scan(walk(paths), workers, evaluator, decider, store, send,
                                      stats, on_bytes=progress.advance, suppressor=suppressor)
            else:
                refs: Refs = []  # so the threshold lane can hold stubs (engine.decide.stubs)
                stats = run_scan(iter_paths(paths, on_bytes=progress.advance, refs=refs),
                                 evaluator, decider, send, stats=stats, refs=refs,
                                 suppressor=suppressor)
    finally:
        progress.close()  # before anything else is written to stderr
        left = sink.close()
    print(summary(stats, evaluator, decider.late, lateness, suppressor), file=sys.stderr)
    if stdout.gone:
        print("trailguard: stdout was closed by its reader: alerts after that were not written",
              file=sys.stderr)
    if backtest:
        write_report(args.report, backtest.build(stats, evaluator, suppressor))
    if left:
        print(f"trailguard: {left} alert(s) not delivered are in the outbox of "
              f"{redact(state_url)}: "
              "trailguard outbox list|retry -c CONFIG", file=sys.stderr)
    return EXIT_FAILURES if stats.unreadable or left else EXIT_OK


class _AlertSink:
    """Where scan's alerts go: the config's outputs and routes (unless a dry run), else stdout.

    `--format`, when given, is the format of stdout either way: the config's stdout
    outputs write in it too."""

    def __init__(self, config: Config, state_url: str, text_format: str | None,
                 deliver: bool = True) -> None:
        self.format = text_format or "jsonl"
        self.out = sys.stdout.buffer
        self.dispatcher = None
        if config.outputs and deliver:
            from engine.outputs import build_dispatcher

            if text_format:
                config = _stdout_format(config, text_format)
            self.dispatcher = build_dispatcher(config, state_url)

    def send(self, alert: Alert) -> None:
        if self.dispatcher is not None:
            self.dispatcher.send(alert)
        elif getattr(self.out, "gone", False):  # engine.stdout: the reader stopped reading,
            raise BrokenPipeError  # and stdout is where every alert goes: stop, quietly
        elif self.format == "text":
            from engine.scan.report import alert_text

            self.out.write(alert_text(alert).encode() + b"\n")
        else:
            self.out.write(jsonsafe.dumps(alert.to_dict(), orjson.OPT_APPEND_NEWLINE))

    def close(self) -> int:
        """Flush, wait for deliveries; the number of alerts left undelivered."""
        self.out.flush()
        if self.dispatcher is None:
            return 0
        report = self.dispatcher.close()
        for line in report.lines():
            print(redact(f"trailguard: {line}"), file=sys.stderr)  # it names the state URL
        return int(report.left)


def _stdout_format(config: Config, text_format: str) -> Config:
    from dataclasses import replace

    outputs = {name: {**settings, "format": text_format} if settings.get("type") == "stdout"
               else settings for name, settings in config.outputs.items()}
    return replace(config, outputs=outputs)


def _scan_paths(paths: list[str], sources: Sequence[object]) -> list[str]:
    if paths:
        return paths
    configured: list[str] = []
    for source in sources:
        if isinstance(source, dict) and source.get("type") == "files":
            configured.extend(str(p) for p in source.get("paths", []))
        elif isinstance(source, dict) and source.get("type") == "stdin":
            configured.append("-")
    if configured:
        return configured
    if not sys.stdin.isatty():
        return ["-"]
    raise ConfigError("nothing to scan: give paths, - for stdin, or a config with a files source",
                      "scan")


def _total_bytes(paths: list[str]) -> int:
    from engine.inputs.walk import total_bytes

    return total_bytes(paths)


def _validate(args: argparse.Namespace) -> int:
    from engine.startup import prepare, rules_of

    setup = prepare(args.config, args.rules, delivery=True)  # every config problem, at once
    if setup.config.path:
        from engine.outputs import check_delivery_config

        check_delivery_config(setup.config)  # outputs and routes, found before the first alert
    from engine.suppressions import validate_with_rules

    ruleset, suppressions = validate_with_rules(setup, rules_of)
    warnings = sorted(ruleset.warnings + suppressions.warnings, key=lambda p: (p.path, p.line))
    _print_problems(warnings)
    counted = f", {len(suppressions.suppressions)} suppressions" if suppressions.files else ""
    print(f"{len(ruleset.rules)} rules in {len(ruleset.files)} files{counted}: no errors, "
          f"{len(warnings)} warnings", file=sys.stderr)
    return EXIT_OK


def _print_problems(problems: Sequence[object]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)
    errors = sum(1 for p in problems if getattr(p, "severity", "error") == "error")
    if errors:
        print(f"{errors} error(s), {len(problems) - errors} warning(s)", file=sys.stderr)


def _test(args: argparse.Namespace) -> int:
    from engine.ruletest import run_tests
    from engine.startup import prepare, rules_of
    from engine.suppressions import load_for

    setup = prepare(args.config, args.rules)
    ruleset = rules_of(setup)
    suppressions = load_for(setup.config, setup.functions, ruleset.rules).suppressions
    passed = failed = 0
    for outcome in run_tests(ruleset.rules, setup.functions, args.pattern, args.engine,
                             setup.config.allowed_lateness, suppressions):
        if outcome.passed:
            passed += 1
        else:
            failed += 1
        if args.verbose or not outcome.passed:
            print(outcome)
    print(f"{passed} passed, {failed} failed")
    return EXIT_FAILURES if failed else EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    from engine.conditions.explain import explain_rule
    from engine.inputs.files import iter_paths
    from engine.startup import prepare, rules_of

    setup = prepare(args.config, args.rules)
    rule = rules_of(setup).by_id().get(args.rule)
    if rule is None:
        raise ConfigError(f"no rule with id {args.rule!r}", "--rule")
    records = [item for item in iter_paths([args.event_file]) if type(item) is dict]
    if not records:
        print(f"trailguard: {args.event_file}: no CloudTrail record found", file=sys.stderr)
        return EXIT_FAILURES
    for record in records[:10]:
        print(f"# {rule.id} on eventID {record.get('eventID', '-')} "
              f"({record.get('eventName', '-')})")
        print("\n".join(explain_rule(rule, record, setup.functions)))
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from engine.schema import rule_schema

    sys.stdout.write(orjson.dumps(rule_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_OK


def _docs(args: argparse.Namespace) -> int:
    from engine.ruledocs import render
    from engine.startup import prepare, rules_of

    text = render(rules_of(prepare(args.config, args.rules)).rules)
    if args.output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    target = Path(args.output)
    if args.check:
        current = target.read_text() if target.exists() else ""
        if current != text:
            print(f"trailguard: {target} is out of date: run trailguard docs --output {target}",
                  file=sys.stderr)
            return EXIT_FAILURES
        return EXIT_OK
    target.write_text(text)
    return EXIT_OK
