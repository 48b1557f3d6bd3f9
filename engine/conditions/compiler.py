"""Compile a parsed JMESPath expression into one Python function.

jmespath's `TreeInterpreter` walks the syntax tree on every search: a dict lookup, a method
dispatch and a call per node, about 5 µs for a typical rule condition. The same predicate in
plain Python costs 0.1-0.4 µs. `compile_tree` translates the tree into Python *source*
(one `def` per expression, plus one per `&expref` body) and `compile()`s it, so a condition
such as ``eventSource == 'x' && eventName == 'y'`` becomes a handful of straight-line
statements (``t1 = d.get('eventSource') if type(d) is dict else _field(d, 'eventSource')``,
``t2 = t1 == 'x'``, ``if <t2 is truthy>: ...``) with no per-node calls.

What must stay identical to jmespath 1.1.0's `TreeInterpreter` (and does, node by node):

* Results and the type of any exception, in the same evaluation order: children left to
  right, `&&`/`||` short-circuit, every function argument resolved before the call.
* Truthiness is the interpreter's `_is_false`: ``''``, ``[]``, ``{}``, null and false are
  false (compared with ``==``), everything else - including 0 - is true. ``!x`` is Python's
  ``not x`` except that ``!0`` is false.
* ``==``/``!=`` use `_equals`: Python ``==`` except that 0/1 never equal false/true. The inline
  ``a == b`` is only emitted when one side is a literal for which `_equals` reduces to ``==``.
* ``<``/``<=``/``>``/``>=`` give null unless both sides are numbers (not bools) or strings;
  otherwise Python's operator runs, so ``'a' < `1``` raises TypeError, as it does there.
* A field of a non-object is null (``value.get`` with AttributeError caught); an index or
  slice of a non-list is null; a slice step of 0 raises ValueError (Python's own).
* Projections drop null results; flatten merges one level; a multi-select of null is null.
* Functions go through ``functions.call_function(name, args)``, so custom `Functions`
  subclasses, arity and type errors behave exactly as in the interpreter. A few hot standard
  functions are inlined, but only for argument types where `call_function` would run the
  very same code (e.g. ``search in subject`` for an exact ``list``/``str``), only when the
  instance uses the stock function and validation machinery, and otherwise defer to
  `call_function`. The `Functions` object is assumed not to change after compilation.
* ``&expr`` evaluates to a genuine `jmespath.visitor._Expression` whose interpreter runs the
  compiled body, so `sort_by`/`map`/custom functions that call ``expref.visit`` work as usual.

Guards: Python limits nested blocks (20) and indentation (100), and code generation recurses
over the tree. Left-nested chains (``a || b || c``, pipes) are emitted flat. Subtrees past
`MAX_LOOPS` nested loops, `MAX_INDENT` blocks or `MAX_DEPTH` levels are evaluated by
delegating to a `TreeInterpreter` (exact by construction), and if generation or `compile()`
still fails, the whole expression falls back to the interpreter. `source_of(f)` shows the
generated code (None for that fallback). `parsed` must come from jmespath's parser; the
tree is read, never modified, and may be shared (the parser caches it).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

import jmespath.functions
from jmespath.visitor import (
    Options,
    TreeInterpreter,
    _equals,
    _Expression,
    _is_actual_number,
    _is_comparable,
)

from engine.model import key_text

Node = Mapping[str, Any]  # a syntax-tree node from jmespath's parser (a dict), only read
TreeFunction = Callable[[Any], Any]
Mask = Callable[[dict[str, Any]], int]  # compile_bucket's function
Matcher = Callable[[dict[str, Any]], list[tuple[Any, str | None]]]  # compile_matcher's

MAX_LOOPS = 12  # nested for-loops per generated function (CPython allows 20 nested blocks)
MAX_INDENT = 40  # indentation levels (CPython's tokenizer allows 100)
MAX_DEPTH = 64  # syntax-tree depth handled by the generator before delegating
MAX_INLINE_NOT_NULL = 8  # not_null() arguments inlined as a conditional chain

_MISSING = object()
_ORDERED = frozenset({int, float, str})  # exact types for which `_is_comparable` holds
_SIZED = frozenset({str, list, dict})  # exact types `length` accepts
_TYPE_NAMES = {  # exact types -> the standard `type()` function's answer
    str: "string", bool: "boolean", list: "array", dict: "object",
    float: "number", int: "number", type(None): "null",
}
_COMPARATORS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_OPERATORS = {"lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge}
# Functions methods a subclass must not override for the inlined standard functions to apply.
_VALIDATION = (
    "call_function", "_validate_arguments", "_type_check", "_type_check_single",
    "_get_allowed_pytypes", "_subtype_check",
)
_INLINABLE = frozenset(
    {"contains", "starts_with", "ends_with", "length", "not_null", "to_string", "keys",
     "values", "type"}
)
_BOOLEAN = frozenset({"contains", "starts_with", "ends_with"})  # stock ones return a bool
_ARITY = {"length": 1, "to_string": 1, "keys": 1, "values": 1, "type": 1,
          "contains": 2, "starts_with": 2, "ends_with": 2}


def compile_tree(parsed: Node, functions: jmespath.functions.Functions) -> TreeFunction:
    """parsed = jmespath.parser.Parser().parse(expr).parsed; returns f(document) -> result,
    same result (and same exception type on error) as jmespath's interpreter."""
    interpreter = TreeInterpreter(Options(custom_functions=functions))
    try:
        return _Generator(functions, interpreter).build(parsed)
    except (RecursionError, MemoryError, SyntaxError):  # SyntaxError covers IndentationError
        return _interpreted(parsed, interpreter)


def compile_bucket(conditions: list[Node], functions: jmespath.functions.Functions) -> Mask:
    """One function evaluating every condition on a record (a dict); bit i of its result is
    set when condition i is truthy.

    The evaluator builds one per (eventSource, eventName) bucket, from the bucket's candidate
    conditions specialised for it. One call instead of one per rule, and the record fields
    that several conditions read are looked up once, at the top. If any condition raises, the
    whole call raises and the caller evaluates the conditions one by one to isolate it.
    """
    interpreter = TreeInterpreter(Options(custom_functions=functions))
    return _Generator(functions, interpreter).build_bucket(conditions)


def compile_matcher(conditions: list[Node], outcomes: list[tuple[Any, list[Node]]],
                    functions: jmespath.functions.Functions) -> Matcher:
    """One function giving `(tag, group key)` for each condition truthy on a record, in
    order; `outcomes[i]` is condition i's tag and its group_by expressions (none: the key is
    None; one: its value as text; several: their texts joined by "|", as
    evaluator.CompiledRule.group_key makes them).

    What compile_bucket does for the conditions, with the group keys computed in the same
    function from the same field lookups: a scan asks for both for nearly every record. An
    empty result is one shared tuple, never mutated. If anything raises, the whole call
    raises and the caller isolates the rule that did.
    """
    interpreter = TreeInterpreter(Options(custom_functions=functions))
    return _Generator(functions, interpreter).build_bucket(conditions, outcomes)


def source_of(function: TreeFunction) -> str | None:
    """The generated Python source behind a compiled expression (None: interpreter fallback)."""
    return getattr(function, "_jmespath_source", None)


def _interpreted(parsed: Node, interpreter: TreeInterpreter) -> TreeFunction:
    def evaluate(document: Any) -> Any:
        return interpreter.visit(parsed, document)

    return evaluate


# ---- runtime helpers referenced by generated code (each mirrors one interpreter method) ----


def _field(value: Any, key: str) -> Any:
    try:
        return value.get(key)
    except AttributeError:
        return None


def _index(value: Any, position: int) -> Any:
    if not isinstance(value, list):
        return None
    try:
        return value[position]
    except IndexError:
        return None


def _values(value: Any) -> Any:
    try:
        return value.values()
    except AttributeError:
        return _MISSING


def _not(value: Any) -> bool:
    if _is_actual_number(value) and value == 0:
        return False
    return not value


def _order(left: Any, right: Any, compare: Callable[[Any, Any], Any]) -> Any:
    if not (_is_comparable(left) and _is_comparable(right)):
        return None
    return compare(left, right)


# jmespath is untyped, so mypy sees TreeInterpreter as Any: subclassing it is how visit() is hooked
class _ExprefInterpreter(TreeInterpreter):  # type: ignore[misc]
    """The interpreter behind an `_Expression`: runs the compiled body for its own node."""

    def __init__(self, functions: jmespath.functions.Functions, node: Node, body: TreeFunction):
        super().__init__(Options(custom_functions=functions))
        self._node = node
        self._body = body

    def visit(self, node: Node, *args: Any, **kwargs: Any) -> Any:
        if node is self._node and len(args) == 1 and not kwargs:
            return self._body(args[0])
        return super().visit(node, *args, **kwargs)


def _inlinable(functions: jmespath.functions.Functions) -> frozenset[str]:
    """Standard functions whose call_function path is stock, so inlining cannot differ."""
    base = jmespath.functions.Functions
    overridden = getattr(functions, "__dict__", {})
    for name in _VALIDATION:
        if name in overridden or getattr(type(functions), name, None) is not getattr(base, name):
            return frozenset()
    table = getattr(functions, "FUNCTION_TABLE", {})
    return frozenset(
        name for name in _INLINABLE
        if (entry := table.get(name)) is not None
        and entry.get("function") is base.FUNCTION_TABLE[name]["function"]
        and entry.get("signature") == base.FUNCTION_TABLE[name]["signature"]
    )


def _plain_literal(node: Node) -> bool:
    """A literal operand for which `_equals(x, lit)` is exactly ``x == lit``."""
    if node.get("type") != "literal":
        return False
    value = node.get("value")
    return not isinstance(value, bool) and not (_is_actual_number(value) and value in (0, 1))


def _is_false(code: str) -> str:
    """Python condition: the interpreter's `_is_false` of the (atomic) `code`."""
    return (f"({code} is not True and ({code} is False or {code} is None or {code} == ''"
            f" or {code} == [] or {code} == {{}}))")


def _is_true(code: str) -> str:
    return (f"({code} is True or not ({code} is False or {code} is None or {code} == ''"
            f" or {code} == [] or {code} == {{}}))")


class _Compiled(Protocol):
    """A function exec() defined from generated source, which it carries for source_of()."""

    _jmespath_source: str

    def __call__(self, document: Any, /) -> Any: ...


@dataclass
class _Body:
    """The lines of one generated function, with the nesting state of the current line."""

    lines: list[str] = field(default_factory=list)
    indent: int = 1
    loops: int = 0


class _Generator:
    """Emits Python statements for each node; each node's value ends up in an atomic name."""

    def __init__(self, functions: jmespath.functions.Functions, interpreter: TreeInterpreter):
        self._functions = functions
        self._fast = _inlinable(functions)
        self._namespace: dict[str, Any] = {
            "__builtins__": __builtins__, "_fns": functions, "_visit": interpreter.visit,
            "_field": _field, "_index": _index, "_values": _values, "_not": _not,
            "_order": _order, "_equals": _equals, "_Expression": _Expression,
            "_MISSING": _MISSING, "_ORDERED": _ORDERED, "_SIZED": _SIZED,
            "_TYPE_NAMES": _TYPE_NAMES,
        }
        self._definitions: list[str] = []
        self._exprefs: list[tuple[str, Node, str]] = []  # (adapter name, node, body function)
        self._body = _Body()
        self._count = 0
        self._depth = 0
        self._bools: set[str] = set()  # names that always hold a bool: truthiness is itself
        self._dicts: set[str] = set()  # names that always hold a dict
        self._hoisted: dict[tuple[str, str], str] = {}  # (src, key) -> name set at the top

    # -- driver --

    def build(self, root: Node) -> TreeFunction:
        return self._finish(self._function(root))

    def _finish(self, name: str) -> _Compiled:
        source = "\n\n".join(self._definitions) + "\n"
        exec(compile(source, "<jmespath-compiled>", "exec"), self._namespace)
        for adapter, node, body in self._exprefs:
            self._namespace[adapter] = _ExprefInterpreter(
                self._functions, node, self._namespace[body])
        evaluator: _Compiled = self._namespace[name]
        evaluator._jmespath_source = source
        return evaluator

    @overload
    def build_bucket(self, conditions: list[Node]) -> Mask: ...
    @overload
    def build_bucket(self, conditions: list[Node],
                     outcomes: list[tuple[Any, list[Node]]]) -> Matcher: ...
    def build_bucket(self, conditions: list[Node],
                     outcomes: list[tuple[Any, list[Node]]] | None = None) -> _Compiled:
        """The mask function of compile_bucket, or with `outcomes` compile_matcher's."""
        name = self._name("_bucket")
        self._body = _Body()
        self._dicts.add("r")  # the record; `d` is left to &expref bodies, of any type
        self._emit("m = 0" if outcomes is None else "m = _NONE")
        self._namespace.update(_NONE=(), _text=key_text)
        groups = [node for _, nodes in outcomes or () for node in nodes]
        self._hoist([*conditions, *groups])
        seen: dict[bytes, str] = {}  # a condition written twice (two rules) is evaluated once
        for bit, condition in enumerate(conditions):
            text = json.dumps(condition, sort_keys=True, default=repr).encode()
            result = seen.get(text) or self._gen(condition, "r")
            seen[text] = result
            with self._block(f"if {self._truthy(result)}:"):
                if outcomes is None:
                    self._emit(f"m |= {1 << bit}")
                else:
                    tag, nodes = outcomes[bit]
                    key = self._group_key(nodes)
                    self._emit("if m is _NONE: m = []")
                    self._emit(f"m.append(({self._const(tag)}, {key}))")
        self._emit("return m")
        self._definitions.append(f"def {name}(r):\n" + "\n".join(self._body.lines))
        return self._finish(name)

    def _group_key(self, nodes: list[Node]) -> str:
        if not nodes:
            return "None"
        texts = []
        for node in nodes:
            value = self._gen(node, "r")
            texts.append(self._assign(f"{value} if type({value}) is str else _text({value})"))
        return texts[0] if len(texts) == 1 else self._assign(f"'|'.join(({', '.join(texts)},))")

    def _hoist(self, conditions: list[Node]) -> None:
        """Look up, once and first, the record fields that two or more conditions read.

        Field access never raises, so reading a field early that a condition's
        short-circuit would have skipped changes no result."""
        from engine.conditions.expressions import root_field_paths

        readers: dict[tuple[str, ...], int] = {}
        for condition in conditions:
            for prefix in {path[:n] for path in root_field_paths(condition)
                           for n in range(1, len(path) + 1)}:
                readers[prefix] = readers.get(prefix, 0) + 1
        names: dict[tuple[str, ...], str] = {(): "r"}
        for prefix in sorted(readers, key=len):
            if readers[prefix] < 2:
                continue
            src, key = names[prefix[:-1]], prefix[-1]
            names[prefix] = self._gen_field({"type": "field", "value": key}, src)
            self._hoisted[(src, key)] = names[prefix]

    def _truthy(self, code: str) -> str:
        return code if code in self._bools else _is_true(code)

    def _falsy(self, code: str) -> str:
        return f"not {code}" if code in self._bools else _is_false(code)

    def _function(self, node: Node) -> str:
        name, outer = self._name("_jp"), self._body
        self._body = _Body()
        try:
            result = self._gen(node, "d")
            self._emit(f"return {result}")
            self._definitions.append(f"def {name}(d):\n" + "\n".join(self._body.lines))
        finally:
            self._body = outer
        return name

    # -- emission primitives --

    def _name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def _const(self, value: Any) -> str:
        name = self._name("_k")
        self._namespace[name] = value
        return name

    def _emit(self, line: str) -> None:
        self._body.lines.append("    " * self._body.indent + line)

    def _assign(self, code: str) -> str:
        target = self._name("t")
        self._emit(f"{target} = {code}")
        return target

    @contextmanager
    def _block(self, header: str, loop: bool = False) -> Iterator[None]:
        self._emit(header)
        self._body.indent += 1
        self._body.loops += loop
        try:
            yield
        finally:
            self._body.indent -= 1
            self._body.loops -= loop

    def _gen(self, node: Node, src: str) -> str:
        """Emit code evaluating `node` against the value in `src`; return the result's name."""
        method: Callable[[Node, str], str] | None = (
            getattr(self, f"_gen_{node.get('type')}", None) if isinstance(node, dict) else None)
        too_deep = self._depth >= MAX_DEPTH or self._body.indent >= MAX_INDENT
        if method is None or too_deep:
            return self._delegate(node, src)
        self._depth += 1
        try:
            return method(node, src)
        finally:
            self._depth -= 1

    def _delegate(self, node: Node, src: str) -> str:
        """Evaluate `node` with the interpreter itself (unknown node, or nesting limits)."""
        return self._assign(f"_visit({self._const(node)}, {src})")

    # -- paths --

    def _gen_identity(self, node: Node, src: str) -> str:
        return src

    _gen_current = _gen_identity

    def _gen_literal(self, node: Node, src: str) -> str:
        # Always a local name, never an inline constant: ``'x' is None`` or ``5[0]`` would
        # make compile() emit SyntaxWarnings. Containers are the node's own object, as there.
        value = node["value"]
        plain = type(value) in (str, bool, int, type(None))
        return self._assign(repr(value) if plain else self._const(value))

    def _gen_field(self, node: Node, src: str) -> str:
        hoisted = self._hoisted.get((src, node["value"]))
        if hoisted is not None:
            return hoisted
        key = repr(node["value"])
        if src in self._dicts:
            return self._assign(f"{src}.get({key})")
        return self._assign(f"{src}.get({key}) if type({src}) is dict else _field({src}, {key})")

    def _gen_subexpression(self, node: Node, src: str) -> str:
        for child in node["children"]:
            src = self._gen(child, src)
        return src

    _gen_index_expression = _gen_subexpression

    def _gen_pipe(self, node: Node, src: str) -> str:
        first, rest = _left_spine(node)  # a | b | c is (a | b) | c: evaluate left to right
        for child in (first, *rest):
            src = self._gen(child, src)
        return src

    def _gen_index(self, node: Node, src: str) -> str:
        i = node["value"]
        if type(i) is not int:
            return self._delegate(node, src)  # not from the parser; never inline it as code
        in_range = f"len({src}) > {i}" if i >= 0 else f"len({src}) >= {-i}"
        return self._assign(
            f"({src}[{i}] if {in_range} else None) if type({src}) is list else _index({src}, {i})")

    def _gen_slice(self, node: Node, src: str) -> str:
        if any(part is not None and type(part) is not int for part in node["children"]):
            return self._delegate(node, src)
        bounds = ":".join("" if part is None else repr(part) for part in node["children"])
        return self._assign(f"{src}[{bounds}] if isinstance({src}, list) else None")

    # -- projections --

    def _gen_projection(self, node: Node, src: str) -> str:
        if self._body.loops >= MAX_LOOPS:
            return self._delegate(node, src)
        base = self._gen(node["children"][0], src)
        result = self._name("t")
        with self._block(f"if isinstance({base}, list):"):
            self._collect(result, base, node["children"][1], None)
        with self._block("else:"):
            self._emit(f"{result} = None")
        return result

    def _gen_filter_projection(self, node: Node, src: str) -> str:
        if self._body.loops >= MAX_LOOPS:
            return self._delegate(node, src)
        left, right, condition = node["children"]
        base = self._gen(left, src)
        result = self._name("t")
        with self._block(f"if isinstance({base}, list):"):
            self._collect(result, base, right, condition)
        with self._block("else:"):
            self._emit(f"{result} = None")
        return result

    def _gen_value_projection(self, node: Node, src: str) -> str:
        if self._body.loops >= MAX_LOOPS:
            return self._delegate(node, src)
        base = self._gen(node["children"][0], src)
        values = self._assign(f"{base}.values() if type({base}) is dict else _values({base})")
        result = self._name("t")
        with self._block(f"if {values} is _MISSING:"):
            self._emit(f"{result} = None")
        with self._block("else:"):
            self._collect(result, values, node["children"][1], None)
        return result

    def _collect(self, result: str, base: str, right: Node, condition: Node | None) -> None:
        """``result = [right(e) for e in base if condition(e)]``, dropping nulls."""
        element = self._name("e")
        self._emit(f"{result} = []")
        with self._block(f"for {element} in {base}:", loop=True):
            if condition is None:
                self._append(result, right, element)
                return
            matched = self._gen(condition, element)
            with self._block(f"if {self._truthy(matched)}:"):
                self._append(result, right, element)

    def _append(self, result: str, right: Node, element: str) -> None:
        value = self._gen(right, element)
        with self._block(f"if {value} is not None:"):
            self._emit(f"{result}.append({value})")

    def _gen_flatten(self, node: Node, src: str) -> str:
        if self._body.loops >= MAX_LOOPS:
            return self._delegate(node, src)
        base = self._gen(node["children"][0], src)
        result, element = self._name("t"), self._name("e")
        with self._block(f"if isinstance({base}, list):"):
            self._emit(f"{result} = []")
            with self._block(f"for {element} in {base}:", loop=True):
                with self._block(f"if isinstance({element}, list):"):
                    self._emit(f"{result}.extend({element})")
                with self._block("else:"):
                    self._emit(f"{result}.append({element})")
        with self._block("else:"):
            self._emit(f"{result} = None")
        return result

    # -- multi-select --

    def _gen_multi_select_list(self, node: Node, src: str) -> str:
        result = self._name("t")
        with self._block(f"if {src} is None:"):
            self._emit(f"{result} = None")
        with self._block("else:"):
            items = [self._gen(child, src) for child in node["children"]]
            self._emit(f"{result} = [{', '.join(items)}]")
        return result

    def _gen_multi_select_dict(self, node: Node, src: str) -> str:
        result = self._name("t")
        with self._block(f"if {src} is None:"):
            self._emit(f"{result} = None")
        with self._block("else:"):
            pairs = [f"{pair['value']!r}: {self._gen(pair, src)}" for pair in node["children"]]
            self._emit(f"{result} = {{{', '.join(pairs)}}}")
        return result

    def _gen_key_val_pair(self, node: Node, src: str) -> str:
        return self._gen(node["children"][0], src)

    # -- boolean logic --

    def _gen_or_expression(self, node: Node, src: str) -> str:
        return self._chain(node, src, conjunction=False)

    def _gen_and_expression(self, node: Node, src: str) -> str:
        return self._chain(node, src, conjunction=True)

    def _chain(self, node: Node, src: str, conjunction: bool) -> str:
        """``a || b || c`` parses as ``(a || b) || c``; emit it flat, not nested, as
        ``r = a; if falsy(r): r = b; if falsy(r): r = c`` (and truthy for ``&&``)."""
        first, rest = _left_spine(node)
        first_value = self._gen(first, src)
        result = self._assign(first_value)
        bools = first_value in self._bools  # so far, `result` has only held bools
        for right in rest:
            if bools:
                self._bools.add(result)
            go_on = self._truthy(result) if conjunction else self._falsy(result)
            self._bools.discard(result)
            with self._block(f"if {go_on}:"):
                value = self._gen(right, src)
                self._emit(f"{result} = {value}")
            bools = bools and value in self._bools
        if bools:
            self._bools.add(result)
        return result

    def _gen_not_expression(self, node: Node, src: str) -> str:
        x = self._gen(node["children"][0], src)
        if x in self._bools:
            return self._bool(f"not {x}")
        return self._bool(f"{x} is False or {x} is None or ({x} is not True and _not({x}))")

    def _bool(self, code: str) -> str:
        name = self._assign(code)
        self._bools.add(name)
        return name

    def _gen_comparator(self, node: Node, src: str) -> str:
        op = node["value"]
        if op not in ("eq", "ne") and op not in _COMPARATORS:
            return self._delegate(node, src)  # not from the parser
        left_node, right_node = node["children"]
        left, right = self._operand(left_node, src), self._operand(right_node, src)
        if op in ("eq", "ne"):
            plain = _plain_literal(left_node) or _plain_literal(right_node)
            # `_equals` only differs from `==` for 0/1 against a bool: not for a string.
            equal = f"{left} == {right}" if plain else (
                f"({left} == {right}) if type({left}) is str else _equals({left}, {right})")
            return self._bool(equal if op == "eq" else f"not ({equal})")
        checks = [f"type({code}) in _ORDERED" for code, child in ((left, left_node),
                  (right, right_node)) if not _ordered_literal(child)]
        compare = f"{left} {_COMPARATORS[op]} {right}"
        if not checks:
            return self._assign(compare)
        fallback = f"_order({left}, {right}, {self._const(_OPERATORS[op])})"
        return self._assign(f"({compare}) if {' and '.join(checks)} else {fallback}")

    def _operand(self, node: Node, src: str) -> str:
        """A comparator operand; str and int literals are written inline (``t1 == 'x'``)."""
        if node.get("type") == "literal" and type(node.get("value")) in (str, int):
            return repr(node["value"])
        return self._gen(node, src)

    # -- functions --

    def _gen_function_expression(self, node: Node, src: str) -> str:
        name = node["value"]
        args = [self._gen(child, src) for child in node["children"]]
        generic = f"_fns.call_function({name!r}, [{', '.join(args)}])"
        if name not in self._fast:
            return self._assign(generic)
        if name in _BOOLEAN:
            return self._bool(_inline_call(name, args, generic))
        return self._assign(_inline_call(name, args, generic))

    def _gen_expref(self, node: Node, src: str) -> str:
        body_node = node["children"][0]
        body = self._function(body_node)
        adapter = self._name("_x")
        self._exprefs.append((adapter, body_node, body))
        return self._assign(f"_Expression({self._const(body_node)}, {adapter})")


def _left_spine(node: Node) -> tuple[Node, list[Node]]:
    """For a left-nested binary chain ``((a op b) op c)``: ``(a, [b, c])``."""
    kind, rest = node["type"], []
    while isinstance(node, dict) and node.get("type") == kind and len(node["children"]) == 2:
        node, right = node["children"]
        rest.append(right)
    return node, rest[::-1]


def _ordered_literal(node: Node) -> bool:
    """A literal whose value `_is_comparable` accepts, so its type needs no runtime check."""
    return node.get("type") == "literal" and type(node.get("value")) in _ORDERED


def _inline_call(name: str, args: list[str], generic: str) -> str:
    """Inline code for a standard function; `generic` (call_function) for any other case."""
    if name == "not_null":
        if not 1 <= len(args) <= MAX_INLINE_NOT_NULL:
            return generic
        return "".join(f"{a} if {a} is not None else " for a in args) + "None"
    if len(args) != _ARITY[name]:
        return generic  # call_function raises the arity error
    a = args[0]
    if name == "type":
        return f"_TYPE_NAMES.get(type({a})) or {generic}"
    if name == "length":
        return f"len({a}) if type({a}) in _SIZED else {generic}"
    if name == "to_string":
        return f"{a} if type({a}) is str else {generic}"
    if name in ("keys", "values"):
        return f"list({a}.{name}()) if type({a}) is dict else {generic}"
    b = args[1]
    if name == "contains":
        return f"({b} in {a}) if type({a}) is list or type({a}) is str else {generic}"
    method = "startswith" if name == "starts_with" else "endswith"
    return f"{a}.{method}({b}) if type({a}) is str and type({b}) is str else {generic}"
