"""CEL over an HTTP answer: ``spec.successCondition``, ``spec.outputs[]``, ``async.completeWhen``.

Pure: no I/O. An expression sees one variable, ``response``: ``statusCode`` (int), ``headers``
(map, lower-case names to strings), ``body`` (the body as read, Secrets already redacted) and
``json`` (the parsed body when it is complete JSON, else null); see :func:`response_view`.

The library: ``cel-expr-python`` (Google's CEL C++ runtime, cel-cpp, behind pybind11), chosen by
measurement over ``cel-python`` (pure Python) and ``common-expression-language`` (the Rust ``cel``
crate); ``python -m bench.cel`` prints the figures. On this machine (2 shared cores), CPython
3.11, each library given ``response`` as one map variable:

==============================  ===============  ==========================  ================
(``response`` as one map)       cel-expr-python  common-expression-language  cel-python
==============================  ===============  ==========================  ================
typical evaluation              18-25 us         44-86 us                    290-700 us
typical compile                 60-115 us        21-45 us                    0.2-0.5 ms
import; RSS after first use     9 ms; +11 MiB    0.3 s; +24 MiB              0.27 s; +17 MiB
one evaluation, 320 KB JSON     12-21 ms         100-160 ms                  230-440 ms
``exists`` over 4,000 items     0.015 s          0.11 s                      1.2 s
``map`` / ``filter``, 4,000     0.67 / 0.75 s    1.3 / 27 s                  0.87 / 1.0 s
conformance checks (bench)      43 / 43          42 (size('é') is 2)         39 (``map !=
                                                                             null``, ``dyn(1)
                                                                             == 1.0``, 3-arg
                                                                             map)
checked at compile time         syntax, types,   syntax only (``foo(1)``     syntax only
                                functions        compiles)
iteration bound                 10,000 in all    none                        none
dependencies                    none             typer, rich, ...            lark, pendulum,
                                                                             google-re2, ...
wheel for CPython 3.11 x86_64   manylinux_2_28   manylinux2014               pure Python
==============================  ===============  ==========================  ================

All three are Apache-2.0. cel-expr-python is Google's own binding (the cel-expr project, 0.1.3:
young, three releases in 2026); common-expression-language has had 16 releases, cel-python 10.

cel-cpp is the reference C++ implementation: the type checker rejects unknown functions and
ill-typed calls before the first request (``foo(1)``, ``size(1)``), errors are values, and its
runtime stops any evaluation after 10,000 comprehension iterations. None of the three offers a
time or cost limit (cel-go's ``CostLimit``), and cel-cpp holds the GIL while it evaluates, so
this module bounds what an evaluation may cost *before* it starts:

- the expression: at most :data:`EXPRESSION_MAX` characters, comprehension macros nested at most
  one level (checked on the checked AST, which cel-cpp serialises as a ``cel.expr.CheckedExpr``
  and :func:`_decode_expr` reads);
- the data: the body as stored (at most :data:`BODY_MAX` characters), ``json`` only for a complete
  body of at most :data:`JSON_MAX_BYTES` bytes nested at most :data:`JSON_DEPTH_MAX` deep;
- the work: :func:`estimate_cost` bounds, from the AST and the actual sizes in the response, the
  work an evaluation can do (a polynomial in the sizes, summed over comprehension iterations);
  an evaluation over :data:`COST_BUDGET` (about 0.15 s of this machine) is refused as an
  evaluation error. Without it a 60-character expression over a 512 KiB body runs for hours
  (``response.json.all(i, (response.body + response.body).contains(response.body + 'b'))``), and
  a plain ``response.json.items.map(i, i)`` costs 1.6 s at 8,000 items, since cel-cpp as built
  copies a comprehension's result list at every step. So ``map`` and ``filter`` run over at
  most about 1,800 elements; ``exists`` and ``all`` over the 10,000 cel-cpp allows.

``response`` is not one variable but four (``response.statusCode`` and so on): the checker then
knows each field's type, and an evaluation converts only the fields it reads. The bare
``response`` is therefore not an expression of its own.
"""

from __future__ import annotations

import array
import base64
import datetime as dt
import functools
import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cel_expr_python import cel

from durable_search.engine.bounds import cut, cut_to_size, string_size

EXPRESSION_MAX: Final = 1024
MESSAGE_MAX: Final = 1024
OUTPUT_MAX: Final = 1024  # characters of one output value
OUTPUTS_BUDGET: Final = 4096  # stored bytes of every output, names and values
BODY_MAX: Final = 700_000  # characters: the stored body (512 KiB raw is ~683 KiB as base64)
JSON_MAX_BYTES: Final = 512 * 1024
JSON_DEPTH_MAX: Final = 64
COMPREHENSION_NESTING_MAX: Final = 1
CACHE_SIZE: Final = 1024
ITERATION_LIMIT: Final = 10_000  # cel-cpp's comprehension_max_iterations, for a whole evaluation
COST_BUDGET: Final = 150_000_000  # cost units (roughly nanoseconds here): about 0.15 s

_INT64 = 2**63


class InvalidExpression(ValueError):  # noqa: N818 - the name the issue gives
    """An expression that cannot be used: it does not compile, or breaks a bound."""

    def __init__(self, message: str) -> None:
        self.message = cut(message, MESSAGE_MAX)
        super().__init__(self.message)


class EvaluationError(Exception):
    """An evaluation that failed, or was refused as too costly for this response."""

    def __init__(self, message: str) -> None:
        self.message = cut(message, MESSAGE_MAX)
        super().__init__(self.message)


# -- the response ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseView:
    """What an expression sees as ``response``; build it with :func:`response_view`."""

    status_code: int
    headers: Mapping[str, str]
    body: str
    json: Any = None
    json_values: int = 0  # how many values the parsed JSON holds (what converting it costs)

    def data(self) -> dict[str, Any]:
        """The fields of ``response`` as CEL reads them."""
        return {
            "statusCode": self.status_code,
            "headers": dict(self.headers),
            "body": self.body,
            "json": self.json,
        }


def response_view(
    status_code: int, headers: Mapping[str, str], body_text: str, complete: bool
) -> ResponseView:
    """The ``response`` an expression sees, from what the engine kept of an answer.

    ``body_text`` is the body as text (already redacted); ``complete`` says it is the whole
    body (not truncated, not undecoded). ``json`` is set only when the body is complete JSON of
    at most :data:`JSON_MAX_BYTES` bytes nested at most :data:`JSON_DEPTH_MAX` deep; integers
    beyond int64 become doubles, as JSON numbers are; strict JSON only (no NaN or Infinity).
    """
    body = _valid_text(body_text[:BODY_MAX])
    parsed, values = _parse_json(body) if complete and len(body) == len(body_text) else (None, 0)
    return ResponseView(
        status_code=int(status_code),
        headers={_valid_text(str(k).lower()): _valid_text(str(v)) for k, v in headers.items()},
        body=body,
        json=parsed,
        json_values=values,
    )


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_text(text: str) -> str:
    """``text`` as valid Unicode: lone surrogates (which CEL cannot hold) become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", text)
    return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_BIG_NUMBER = re.compile(r"\d{19}")
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _parse_json(text: str) -> tuple[Any, int]:
    """The parsed body and how many values it holds, or ``(None, 0)``; linear, C-speed scans.

    Depth is measured on the text (brackets outside strings) once it parsed: json's own
    recursion limit refuses anything deeper than about a thousand levels first. The slower
    walk that fixes numbers beyond int64 and lone surrogates runs only when the text holds one.
    """
    if not text or len(text) > JSON_MAX_BYTES or len(text.encode("utf-8")) > JSON_MAX_BYTES:
        return None, 0
    try:  # first, so that the scans below only ever see valid JSON (every string closed)
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None, 0
    bare = _STRING.sub("", text).encode("utf-8", "replace")
    brackets = array.array("b", bare.translate(_BRACKETS, _NOT_BRACKETS))
    if brackets and max(itertools.accumulate(brackets)) > JSON_DEPTH_MAX:
        return None, 0
    if _BIG_NUMBER.search(text) or _SURROGATE.search(text):
        value = _clean_json(value)
    values = bare.count(b",") + bare.count(b":") + len(brackets) // 2 + 1
    return value, values


def _clean_json(value: Any) -> Any:
    """``value`` with CEL-safe numbers and strings (iterative: no recursion)."""
    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        item = parent[key]
        if isinstance(item, str):
            parent[key] = _valid_text(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            if not -_INT64 <= item < _INT64:
                parent[key] = float(item)
        elif isinstance(item, list):
            stack.extend((item, index) for index in range(len(item)))
        elif isinstance(item, dict):
            clean = {_valid_text(k): v for k, v in item.items()}
            parent[key] = clean
            stack.extend((clean, name) for name in clean)
    return root[0]


# -- compiling ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Compiled:
    """A compiled, checked expression: compile once, evaluate against many responses."""

    text: str
    returns: str  # the checked result type: BOOL, INT, DYN, LIST<DYN>, ...
    ast: _Node = field(repr=False)
    program: Any = field(repr=False)


VARIABLES: Final = ("response.statusCode", "response.headers", "response.body", "response.json")


@functools.cache
def _environment() -> Any:
    """One variable per field, so the checker knows their types (``response.statusCode ==
    '200'`` and ``response.bodyy`` do not compile) and an evaluation converts only the fields it
    reads: cel-cpp turns a variable's Python value into CEL values at every evaluation that
    reads it, which for ``response.json`` costs about 0.2-0.35 us per JSON value."""
    types = cel.Type
    return cel.NewEnv(
        variables={
            "response.statusCode": types.INT,
            "response.headers": types.Map(types.STRING, types.STRING),
            "response.body": types.STRING,
            "response.json": types.DYN,
        }
    )


def compile_expression(text: str) -> Compiled:
    """``text`` compiled and checked, from a bounded cache; :class:`InvalidExpression` if not.

    Refused: more than :data:`EXPRESSION_MAX` characters, a syntax or type error (an unknown
    function or variable, a call no overload accepts), comprehension macros (``all``,
    ``exists``, ``exists_one``, ``map``, ``filter``) nested more than one level.
    """
    result = _compile_cached(text)
    if isinstance(result, str):
        raise InvalidExpression(result)
    return result


def compile_condition(text: str) -> Compiled:
    """As :func:`compile_expression`, also refusing an expression whose type is not bool."""
    compiled = compile_expression(text)
    if compiled.returns not in ("BOOL", "DYN"):
        raise InvalidExpression(
            f"a condition must give a bool; this expression gives {compiled.returns.lower()}"
        )
    return compiled


@functools.lru_cache(maxsize=CACHE_SIZE)
def _compile_cached(text: str) -> Compiled | str:
    """The compiled expression, or the message saying why it cannot be (failures are cached)."""
    if len(text) > EXPRESSION_MAX:
        return f"the expression has {len(text)} characters; at most {EXPRESSION_MAX} are allowed"
    if not text.strip():
        return "the expression is empty"
    try:
        program = _environment().compile(_valid_text(text))
    except RuntimeError as error:
        return _library_message(str(error))
    try:
        ast = _decode_checked(bytes(program.serialize()))
    except (ValueError, IndexError) as error:  # pragma: no cover - a library format change
        return f"the expression's syntax tree could not be read: {error}"
    depth = _nesting(ast)
    if depth > COMPREHENSION_NESTING_MAX:
        return (
            f"comprehension macros (all, exists, exists_one, map, filter) are nested {depth} "
            f"levels deep; at most {COMPREHENSION_NESTING_MAX} is allowed"
        )
    return Compiled(text=text, returns=program.return_type().name(), ast=ast, program=program)


def _library_message(text: str) -> str:
    """cel-cpp's status text without its status codes: ``ERROR: <input>:1:4: ...``."""
    text = text.strip()
    for code in ("INVALID_ARGUMENT", "NOT_FOUND", "OUT_OF_RANGE", "UNKNOWN", "INTERNAL"):
        text = text.removeprefix(f"{code}: ").removesuffix(f" [{code}]")
    return text.replace("<input>:", "expression:").strip()


# -- the checked AST (cel.expr.CheckedExpr, protobuf wire format) ---------------------------


@dataclass(frozen=True)
class _Node:
    kind: str  # const, ident, select, has, call, list, map, struct, comprehension
    name: str = ""  # ident name, selected field, called function
    value: Any = None  # a constant's value
    children: tuple[_Node, ...] = ()  # call: target first (if any), then args
    # comprehension: range, init, condition, step, result; variables
    iter_vars: tuple[str, ...] = ()
    accu_var: str = ""
    has_target: bool = False


def _varint(data: bytes, at: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[at]
        at += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, at
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes) -> Iterator[tuple[int, Any]]:
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = data[at : at + 8], at + 8
        elif wire == 2:
            length, at = _varint(data, at)
            value, at = data[at : at + length], at + length
        elif wire == 5:
            value, at = data[at : at + 4], at + 4
        else:
            raise ValueError(f"unexpected wire type {wire}")
        yield number, value


def _decode_checked(serialized: bytes) -> _Node:
    """The root expression of cel-cpp's serialised form: ``Any{CheckedExpr{expr = 4}}``."""
    payload = dict(_fields(serialized)).get(2, serialized)
    for number, value in _fields(payload):
        if number == 4:
            return _decode_expr(value)
    raise ValueError("no expression in the checked form")


def _decode_expr(data: bytes) -> _Node:
    for number, value in _fields(data):
        if number == 3:
            return _Node("const", value=_decode_constant(value))
        if number == 4:
            return _Node("ident", name=_text(dict(_fields(value)).get(1, b"")))
        if number == 5:
            operand, name, test_only = None, "", False
            for n, v in _fields(value):
                if n == 1:
                    operand = _decode_expr(v)
                elif n == 2:
                    name = _text(v)
                elif n == 3:
                    test_only = bool(v)
            kind = "has" if test_only else "select"
            return _Node(kind, name=name, children=(operand,) if operand else ())
        if number == 6:
            target, function, args = None, "", []
            for n, v in _fields(value):
                if n == 1:
                    target = _decode_expr(v)
                elif n == 2:
                    function = _text(v)
                elif n == 3:
                    args.append(_decode_expr(v))
            children: tuple[_Node, ...] = ((target,) if target else ()) + tuple(args)
            return _Node("call", name=function, children=children, has_target=bool(target))
        if number == 7:
            elements = tuple(_decode_expr(v) for n, v in _fields(value) if n == 1)
            return _Node("list", children=elements)
        if number == 8:
            parts: list[_Node] = []
            message = ""
            for n, v in _fields(value):
                if n == 1:
                    message = _text(v)
                elif n == 2:
                    for en, ev in _fields(v):
                        if en in (3, 4):
                            parts.append(_decode_expr(ev))
            return _Node("map" if not message else "struct", name=message, children=tuple(parts))
        if number == 9:
            return _decode_comprehension(value)
    raise ValueError("an expression of no known kind")


def _decode_comprehension(data: bytes) -> _Node:
    parts: dict[int, _Node] = {}
    names: dict[int, str] = {}
    for n, v in _fields(data):
        if n in (1, 3, 8):
            names[n] = _text(v)
        elif n in (2, 4, 5, 6, 7):
            parts[n] = _decode_expr(v)
    empty = _Node("const", value=None)
    return _Node(
        "comprehension",
        children=tuple(parts.get(n, empty) for n in (2, 4, 5, 6, 7)),
        iter_vars=tuple(names[n] for n in (1, 8) if names.get(n)),
        accu_var=names.get(3, ""),
    )


def _decode_constant(data: bytes) -> Any:
    for number, value in _fields(data):
        if number == 1:
            return None
        if number in (2, 3, 4):
            return value  # sizes only matter for strings and bytes
        if number == 5:
            return 0.0
        if number == 6:
            return _text(value)
        if number == 7:
            return bytes(value)
    return None


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8", "replace")


def _nesting(node: _Node) -> int:
    """How deep comprehensions nest in ``node``: one inside another's body counts one more.

    A comprehension in another's *range* (``a.filter(x, p).map(x, f)``) runs once, before
    the other: chaining, not nesting.
    """
    if node.kind == "comprehension":
        iter_range, init, *body = node.children
        return max(_nesting(iter_range), _nesting(init), 1 + max(_nesting(b) for b in body))
    return max((_nesting(child) for child in node.children), default=0)


# -- what an evaluation may cost ------------------------------------------------------------

# Cost units are calibrated on this machine to about a nanosecond (bench.cel measures them).
NODE_COST: Final = 100  # evaluating one node
BYTE_COST: Final = 1  # one byte copied, compared or scanned
SEARCH_DIVISOR: Final = 16  # contains/matches: haystack x needle bytes / 16 (memcmp's width)
CONCAT_COST: Final = 2  # one byte of a new string or list: allocated, then copied
MATCH_COST: Final = 8  # one byte scanned by RE2
APPEND_COST: Final = 90  # one element copied when map/filter append to their result
CONVERT_COST: Final = 50  # one byte of result turned into Python values
JSON_VALUE_COST: Final = 300  # one value of response.json turned into a CEL value


@dataclass(frozen=True)
class _Est:
    """An upper bound on a value's size (bytes) and length, and the actual value when known."""

    size: int
    count: int
    value: Any = None
    known: bool = False


_SMALL = _Est(8, 1)


class _Estimator:
    def __init__(self, view: ResponseView) -> None:
        self.body = len(view.body.encode("utf-8"))
        headers = sum(len(k) + len(v) + 4 for k, v in view.headers.items())
        # A container is the headers or part of the JSON, which came from the body.
        self.container = max(headers, self.body) + 64
        self.fields = view.data()
        self.json_values = view.json_values
        self.read: set[str] = set()  # the fields this expression reads

    def of_value(self, value: Any) -> _Est:
        if isinstance(value, str | bytes | bytearray):
            size = len(value) if isinstance(value, bytes | bytearray) else len(value.encode())
            return _Est(size, size, value, True)
        if isinstance(value, list | dict):
            return _Est(self.container, len(value), value, True)
        return _Est(8, 1, value, True)

    def cost(self, node: _Node, scope: Mapping[str, _Est]) -> tuple[int, _Est]:
        kind = node.kind
        if kind == "const":
            value = node.value
            size = len(value.encode()) if isinstance(value, str) else 8
            if isinstance(value, bytes):
                size = len(value)
            return NODE_COST, _Est(size, size)
        if kind == "ident":
            if node.name in scope:
                return NODE_COST, scope[node.name]
            if node.name in VARIABLES:
                name = node.name.removeprefix("response.")
                self.read.add(name)
                return NODE_COST, self.of_value(self.fields[name])
            return NODE_COST, _SMALL  # a type name: int, string, ...
        if kind == "has":
            cost, _ = self.cost(node.children[0], scope)
            return cost + NODE_COST, _SMALL
        if kind == "select":
            cost, operand = self.cost(node.children[0], scope)
            return cost + NODE_COST, self.member(operand, node.name)
        if kind in ("list", "map", "struct"):
            total, size = NODE_COST, 0
            for child in node.children:
                cost, est = self.cost(child, scope)
                total += cost + NODE_COST
                size += est.size + 1
            count = len(node.children) // (2 if kind == "map" else 1)
            return total, _Est(size + 8, count)
        if kind == "comprehension":
            return self.comprehension(node, scope)
        return self.call(node, scope)

    def member(self, operand: _Est, key: Any) -> _Est:
        if operand.known and isinstance(operand.value, dict):
            if key in operand.value:
                return self.of_value(operand.value[key])
            return _SMALL  # no such key: an error, at once
        if operand.known and isinstance(operand.value, list) and isinstance(key, int):
            if 0 <= key < len(operand.value):
                return self.of_value(operand.value[key])
            return _SMALL  # out of range: an error, at once
        return _Est(operand.size, operand.size)  # a part is no larger than the whole

    def call(self, node: _Node, scope: Mapping[str, _Est]) -> tuple[int, _Est]:
        total = NODE_COST
        args: list[_Est] = []
        for child in node.children:
            cost, est = self.cost(child, scope)
            total += cost
            args.append(est)
        name = node.name
        sizes = [a.size for a in args]
        if name == "_[_]" and len(args) == 2:
            key = node.children[1]
            constant = key.value if key.kind == "const" else None
            if isinstance(constant, str | int) and not isinstance(constant, bool):
                return total + BYTE_COST * sizes[1], self.member(args[0], constant)
            return total + BYTE_COST * sizes[1], _Est(sizes[0], sizes[0])
        if name == "_+_" and len(args) == 2:
            size = sizes[0] + sizes[1]
            return total + CONCAT_COST * size, _Est(size, args[0].count + args[1].count)
        if name == "_?_:_" and len(args) == 3:
            return total, _Est(max(sizes[1], sizes[2]), max(args[1].count, args[2].count))
        if name in ("contains", "matches") and len(args) == 2:
            scan = (MATCH_COST if name == "matches" else BYTE_COST) * (sizes[0] + sizes[1])
            return total + scan + sizes[0] * sizes[1] // SEARCH_DIVISOR, _SMALL
        if name == "@in" and len(args) == 2:
            return total + BYTE_COST * sum(sizes) + NODE_COST * args[1].count, _SMALL
        if name in ("string", "bytes", "dyn"):
            return total + BYTE_COST * sum(sizes), _Est(max(sizes, default=0) + 32, 32)
        return total + BYTE_COST * sum(sizes), _SMALL

    def comprehension(self, node: _Node, scope: Mapping[str, _Est]) -> tuple[int, _Est]:
        iter_range, init, condition, step, result = node.children
        total, over = self.cost(iter_range, scope)
        init_cost, accu = self.cost(init, scope)
        total += init_cost
        n = min(over.count, ITERATION_LIMIT)
        # The body's cost is a polynomial in the element's size with non-negative
        # coefficients, so over elements whose sizes add up to at most the range's size it is
        # at most n times the cost at size 0 plus the cost at the range's size.
        nothing = _Est(0, 0)
        whole = _Est(over.size, max(over.size, over.count))
        step_size = 0
        for element, times in ((nothing, n), (whole, 1)):
            inner = {**scope, node.accu_var: _Est(0, 0)}
            inner.update(dict.fromkeys(node.iter_vars, element))
            condition_cost, _ = self.cost(condition, inner)
            step_cost, appended = self.cost(step, inner)
            total += times * (condition_cost + step_cost)
            step_size += times * appended.size
        if init.kind == "list":  # map and filter: the result list is copied at every step
            total += APPEND_COST * n * (n + 1) // 2
            accu = _Est(step_size, n)
        result_cost, value = self.cost(result, {**scope, node.accu_var: accu})
        return total + result_cost, value


def estimate_cost(compiled: Compiled, response: ResponseView) -> int:
    """An upper bound, in cost units (about ns here), on evaluating ``compiled`` over ``response``.

    Counts the nodes evaluated, the bytes copied, compared or searched (``contains`` and
    ``matches`` as haystack x needle), comprehension iterations (at most
    :data:`ITERATION_LIMIT`), cel-cpp's copying of a ``map``/``filter`` result at every step,
    and turning the result into Python values.
    """
    estimator = _Estimator(response)
    cost, result = estimator.cost(compiled.ast, {})
    if "json" in estimator.read:  # converted at every evaluation that reads it
        cost += JSON_VALUE_COST * estimator.json_values
    if "body" in estimator.read:
        cost += BYTE_COST * estimator.body
    return cost + CONVERT_COST * result.size


# -- evaluating -----------------------------------------------------------------------------


def evaluate(compiled: Compiled, response: ResponseView, cost: int | None = None) -> Any:
    """The value of ``compiled`` over ``response``, as Python values; :class:`EvaluationError`.

    ``cost`` is :func:`estimate_cost`'s answer when the caller has it already.

    Values: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytearray`` (bytes),
    ``datetime.datetime``, ``datetime.timedelta``, lists and dicts of them, and a type's name
    for a CEL type value (inside a list or map: the library's ``Type``).
    """
    if cost is None:
        cost = estimate_cost(compiled, response)
    if cost > COST_BUDGET:
        raise EvaluationError(
            f"the expression could cost too much over this response (estimated "
            f"{cost / 1e9:.3g} s of work, limit {COST_BUDGET / 1e9:.3g} s): comprehensions over "
            f"large lists, or contains/matches/+ on large strings"
        )
    try:
        data = response.data()
        value = compiled.program.eval(data={f"response.{k}": v for k, v in data.items()})
    except RuntimeError as error:
        raise EvaluationError(_evaluation_message(str(error))) from None
    if value.type() == cel.Type.ERROR:
        raise EvaluationError(_evaluation_message(str(value.plain_value())))
    return _python(value.plain_value())


def _evaluation_message(text: str) -> str:
    text = _library_message(text)
    if text == "Iteration budget exceeded":
        return f"comprehensions may iterate at most {ITERATION_LIMIT} times in all"
    return text


def _python(value: Any) -> Any:
    """A type value as its name (walking a large result for nested ones would cost more than
    the evaluation: :func:`output_string` renders those)."""
    return value.name().lower() if isinstance(value, cel.Type) else value


def condition(compiled: Compiled, response: ResponseView) -> tuple[bool, str | None]:
    """Whether ``compiled`` holds for ``response``; an error makes it false, with a message."""
    try:
        value = evaluate(compiled, response)
    except EvaluationError as error:
        return False, error.message
    if isinstance(value, bool):
        return value, None
    return False, cut(f"the condition gave {_type_name(value)}, not a bool", MESSAGE_MAX)


def _type_name(value: Any) -> str:
    names = {type(None): "null", int: "int", float: "double", str: "string", list: "list"}
    names.update({dict: "map", bytearray: "bytes", bytes: "bytes"})
    return names.get(type(value), type(value).__name__)


# -- outputs --------------------------------------------------------------------------------


def output_string(value: Any) -> str:
    """A CEL string as it is, anything else as compact JSON; at most :data:`OUTPUT_MAX` chars.

    Bytes are base64, timestamps RFC 3339, durations seconds with an ``s`` (as in proto3
    JSON), NaN and the infinities the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
    """
    if isinstance(value, str):
        return cut(value, OUTPUT_MAX)
    pieces: list[str] = []
    length = 0
    for piece in _json_pieces(value):
        pieces.append(piece)
        length += len(piece)
        if length > OUTPUT_MAX:
            break
    return cut("".join(pieces), OUTPUT_MAX)


def _json_pieces(value: Any) -> Iterator[str]:
    """Compact JSON of ``value``, piece by piece, so that a huge value costs only what is read."""
    if value is None or isinstance(value, bool | int | float | str):
        yield _json_scalar(value)
    elif isinstance(value, list | tuple):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            yield from _json_pieces(item)
        yield "]"
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            if index:
                yield ","
            yield _json_scalar(key if isinstance(key, str) else _json_scalar(key))
            yield ":"
            yield from _json_pieces(item)
        yield "}"
    else:
        yield _json_scalar(_plain(value))


def _json_scalar(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        value = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        value = value[: OUTPUT_MAX + 1]  # escaping never shortens: the rest would be cut
    return json.dumps(value, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value[:OUTPUT_MAX])).decode("ascii")
    if isinstance(value, dt.datetime):
        text = value.isoformat()
        return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, cel.Type):
        return value.name().lower()
    return str(value)


def render_outputs(named_values: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, str]:
    """``status.outputs``: each value by :func:`output_string`, all within OUTPUTS_BUDGET.

    The budget counts stored bytes (names and values, as the API server writes them); a value
    that does not fit is cut to what is left (marked `` …``), and an output whose name no longer
    fits is left out.
    """
    items = named_values.items() if isinstance(named_values, Mapping) else named_values
    rendered: dict[str, str] = {}
    room = OUTPUTS_BUDGET
    for name, value in items:
        text = output_string(value)
        overhead = string_size(name) + 6  # quotes, colon, comma
        if overhead >= room:
            continue
        if overhead + string_size(text) > room:
            text = _cut_to_stored(text, room - overhead)
        rendered[name] = text
        room -= overhead + string_size(text)
    return rendered


def _cut_to_stored(text: str, size: int) -> str:
    """The longest prefix of ``text`` that fits in ``size`` stored bytes with the cut mark."""
    mark = " …"
    room = size - string_size(mark)
    if room <= 0:
        return ""
    return cut_to_size(text, room) + mark
