"""CEL libraries measured for issue 12, and the worst cases of ``engine.cel`` within its bounds.

    .venv/bin/python -m bench.cel [--out bench/results/cel.json] [--skip-libraries]

Part 1 compares every candidate library that is importable, each in a fresh subprocess (so that
memory figures are its own): ``cel_expr_python`` (cel-expr-python, cel-cpp), ``cel``
(common-expression-language, the Rust crate) and ``celpy`` (cel-python). The project's venv has
only the chosen one; to compare all three, use a scratch venv:

    python3.11 -m venv /tmp/celbench
    /tmp/celbench/bin/pip install cel-expr-python cel-python common-expression-language
    PYTHONPATH=operator:. /tmp/celbench/bin/python -m bench.cel

For each: import time and memory (RSS), compile and evaluation time of the typical expressions,
evaluation over a 512 KiB JSON body, ``map``/``filter``/``exists`` over growing lists (to show
how each scales), and conformance checks on the features we need, each against the result the
CEL specification gives.

Part 2 measures ``durable_search.engine.cel`` itself: building a response view from hostile
512 KiB bodies, the cost estimate's own price, and hostile expressions: what each is estimated
at, whether it is refused, and how long the accepted ones take (the cost model's calibration:
actual nanoseconds per estimated unit, which must stay below 1).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import emit

LIBRARIES = {
    "cel-expr-python": "cel_expr_python",
    "common-expression-language": "cel",
    "cel-python": "celpy",
}

TYPICAL = [
    "response.statusCode == 200",
    "response.json.status == 'succeeded'",
    "response.json.items.map(i, i.id)",
    "size(response.body) > 0",
    "response.headers['content-type'].startsWith('application/json')",
]

SMALL_JSON = {
    "status": "succeeded",
    "items": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
    "n": None,
    "f": 1.5,
    "obj": {"k": "v"},
}

# (expression, what the CEL specification says it gives; "error" for an evaluation error)
CONFORMANCE: list[tuple[str, Any]] = [
    ("response.json.items.map(i, i.id)", [1, 2, 3]),
    ("response.json.items.map(i, i.id > 1, i.id)", [2, 3]),
    ("response.json.items.filter(i, i.id > 1).size()", 2),
    ("response.json.items.all(i, i.id > 0)", True),
    ("response.json.items.exists(i, i.id == 2)", True),
    ("response.json.items.exists_one(i, i.id > 1)", False),
    ("response.json.items.map(i, i.id).filter(x, x > 1)", [2, 3]),
    ("response.json.obj.all(k, k == 'k')", True),
    ("response.body.startsWith('{')", True),
    ("response.body.endsWith('}')", True),
    ("response.body.contains('succeeded')", True),
    ("response.json.status.matches('^succ[a-z]+$')", True),
    ("size(response.json.status) == 9 && response.json.status.size() == 9", True),
    ("size('é') == 1", True),
    ("size(response.json.items) == 3 && size(response.json.obj) == 1", True),
    ("has(response.json.status)", True),
    ("has(response.json.nope)", False),
    ("response.json.n == null", True),
    ("response.json != null", True),
    ("response.json.obj != null", True),
    ("null == null", True),
    ("response.json.nope", "error"),
    ("response.json.n.x", "error"),
    ("dyn(1) == 1.0", True),
    ("response.json.f == 1.5 && response.json.f > 1.0", True),
    ("response.json.items[0].id == 1", True),
    ("type(response.json.f) == double && type(response.json.items[0].id) == int", True),
    ("type(response.json.status) == string && type(response.json.items) == list", True),
    ("type(response.json.obj) == map", True),
    ("response.json['status'] == 'succeeded'", True),
    ("response.headers['content-type'] == 'application/json'", True),
    ("response.headers['x-missing']", "error"),
    ("'status' in response.json && !('nope' in response.json)", True),
    ("2 in response.json.items.map(i, i.id)", True),
    ("[1, 2][5]", "error"),
    ("1 / 0", "error"),
    ("9223372036854775807 + 1", "error"),
    ("response.json.nope == 1 || true", True),
    ("int('12') + 1 == 13 && double('1.5') == 1.5 && string(12) == '12'", True),
    ("'a' + 'b' == 'ab' && [1] + [2] == [1, 2]", True),
    ("{'a': 1}['a'] == 1 && {'a': 1}.a == 1", True),
    ("response.statusCode >= 200 && response.statusCode < 300", True),
    ("true ? 'x' : 'y'", "x"),
]


def _response(json_value: Any, body: str | None = None) -> dict[str, Any]:
    text = json.dumps(json_value, separators=(",", ":")) if body is None else body
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": text,
        "json": json_value,
    }


# -- part 1: one library, in this process ---------------------------------------------------


class Adapter:
    """compile(text) -> program; run(program, response dict) -> a plain value or raise."""

    compile: Callable[[str], Any]
    run: Callable[[Any, dict[str, Any]], Any]


def _adapter(library: str) -> Adapter:
    adapter = Adapter()
    if library == "cel-expr-python":
        from cel_expr_python import cel

        env = cel.NewEnv(variables={"response": cel.Type.Map(cel.Type.STRING, cel.Type.DYN)})

        def run_cpp(program: Any, response: dict[str, Any]) -> Any:
            value = program.eval(data={"response": response})
            if value.type() == cel.Type.ERROR:
                raise RuntimeError(value.plain_value())
            return value.plain_value()

        adapter.compile = env.compile
        adapter.run = run_cpp
    elif library == "common-expression-language":
        import cel as rust  # type: ignore[import-not-found,unused-ignore]

        adapter.compile = rust.compile
        adapter.run = lambda program, response: program.execute({"response": response})
    else:
        import celpy  # type: ignore[import-not-found,unused-ignore]

        env = celpy.Environment()
        adapter.compile = lambda text: env.program(env.compile(text))

        def run_py(program: Any, response: dict[str, Any]) -> Any:
            return _plain(program.evaluate({"response": celpy.json_to_cel(response)}))

        adapter.run = run_py
    return adapter


def _plain(value: Any) -> Any:
    """cel-python's wrapper types as plain Python values (its BoolType is an int)."""
    if isinstance(value, bool | type(None)):
        return value
    if type(value).__name__ == "BoolType":
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def _rss_kib() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def _per_call_us(call: Callable[[], Any], budget_s: float = 0.3) -> float:
    """Median microseconds per call over a few batches."""
    call()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget_s / 5:
        call()
        runs += 1
    batch = max(runs, 1)
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(batch):
            call()
        samples.append((time.perf_counter() - start) / batch * 1e6)
    return round(statistics.median(samples), 2)


def _timed(call: Callable[[], Any]) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        call()
        outcome = "ok"
    except Exception as error:
        outcome = f"error: {str(error)[:120]}"
    return round(time.perf_counter() - start, 4), outcome


def measure_library(library: str) -> dict[str, Any]:
    module = LIBRARIES[library]
    if importlib.util.find_spec(module) is None:
        return {"installed": False}
    from importlib import metadata

    report: dict[str, Any] = {"installed": True, "version": metadata.version(library)}
    dist = metadata.distribution(library)
    wheel = dist.read_text("WHEEL") or ""
    report["wheel_tags"] = [line[5:] for line in wheel.splitlines() if line.startswith("Tag: ")]
    report["license"] = dist.metadata.get("License-Expression") or dist.metadata.get("License")
    report["requires"] = dist.requires or []
    before = _rss_kib()
    start = time.perf_counter()
    adapter = _adapter(library)
    report["import_s"] = round(time.perf_counter() - start, 4)
    small = _response(SMALL_JSON)
    programs = {text: adapter.compile(text) for text in TYPICAL}
    for program in programs.values():
        adapter.run(program, small)
    after = _rss_kib()
    report["rss_import_compile_run_kib"] = after["VmRSS"] - before["VmRSS"]
    report["typical"] = {
        text: {
            "compile_us": _per_call_us(lambda text=text: adapter.compile(text)),
            "eval_us": _per_call_us(lambda program=program: adapter.run(program, small)),
        }
        for text, program in programs.items()
    }
    # a 512 KiB JSON body: ~7,000 items of ~75 bytes
    items = [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(6800)]
    big = _response({"status": "succeeded", "items": items})
    report["body_512k_bytes"] = len(big["body"])
    report["eval_over_512k_us"] = {
        text: _per_call_us(lambda program=programs[text]: adapter.run(program, big), 0.5)
        for text in TYPICAL
        if "map" not in text
    }
    scaling: dict[str, dict[int, Any]] = {}
    for text in (
        "response.json.items.exists(i, i.id < 0)",
        "response.json.items.map(i, i.id).size() > 0",
        "response.json.items.filter(i, i.id >= 0).size() > 0",
    ):
        program = adapter.compile(text)
        row: dict[int, Any] = {}
        for n in (1000, 2000, 4000):
            data = _response({"items": items[:n]}, body="")
            seconds, outcome = _timed(lambda program=program, data=data: adapter.run(program, data))
            row[n] = seconds if outcome == "ok" else outcome
        scaling[text] = row
    report["scaling_s"] = scaling
    report["rss_peak_kib"] = _rss_kib()["VmHWM"]
    report["conformance"] = _conformance(adapter, small)
    return report


def _conformance(adapter: Adapter, response: dict[str, Any]) -> dict[str, Any]:
    failures = {}
    for text, expected in CONFORMANCE:
        try:
            got: Any = adapter.run(adapter.compile(text), response)
        except Exception as error:
            got = "error"
            detail = f"{type(error).__name__}: {str(error)[:100]}"
        else:
            detail = repr(got)[:100]
        if got != expected or type(got) is not type(expected):
            failures[text] = {"expected": expected, "got": detail}
    return {"checks": len(CONFORMANCE), "passed": len(CONFORMANCE) - len(failures), **failures}


# -- part 2: engine.cel ---------------------------------------------------------------------


def _balanced_sum(term: str, count: int) -> str:
    """``term`` added ``count`` times as a balanced tree (cel-cpp parses at most 32 deep)."""
    if count == 1:
        return term
    return f"({_balanced_sum(term, count // 2)} + {_balanced_sum(term, count - count // 2)})"


HOSTILE = [
    # typical, over a 512 KiB JSON body (list of ~7,000 objects)
    ("typical", "response.json.status == 'succeeded'"),
    ("typical", "response.json.items.exists(i, i.id == -1)"),
    ("typical", "response.json.items.all(i, i.name.startsWith('item'))"),
    ("typical", "response.json.items.map(i, i.id).size() > 0"),
    ("typical", "response.json.items.filter(i, i.id < 1000).map(i, i.id).size() > 0"),
    ("typical", "response.json.items[0].name"),
    ("typical", "response.json"),
    ("typical", "response.body"),
    ("typical", "response.body.contains('item 6799')"),
    ("typical", "response.body.matches('.*\"id\":6799.*')"),
    # hostile expressions, within the length and nesting rules
    ("hostile", "response.json.items.map(i, i)"),
    ("hostile", "response.json.items.map(i, response.body).size() > 0"),
    ("hostile", "response.json.items.all(i, (response.body + response.body).size() > 0)"),
    ("hostile", "(response.body + response.body).contains(response.body + 'b')"),
    ("hostile", "response.json.items.all(i, response.body.contains(response.body + 'x'))"),
    ("hostile", f"size({_balanced_sum('response.body', 48)}) > 0"),
    ("hostile", f"response.json.items.all(i, size({_balanced_sum('i.name', 64)}) > 0)"),
    ("hostile", "response.json.items.exists(i, string(response.json) == '')"),
]


def _engine_report() -> dict[str, Any]:
    from durable_search.engine import cel

    report: dict[str, Any] = {}
    bodies = {
        "262k zeros in a list": "[" + ",".join(["0"] * (256 * 1024 - 1)) + "]",
        "7k objects": json.dumps(
            {"status": "succeeded", "items": [{"id": i, "name": f"item {i}"} for i in range(7000)]}
        ),
        "depth 64": "[" * 64 + "]" * 64,
        "depth 65 (refused)": "[" * 65 + "]" * 65,
        "depth 100,000 (refused)": "[" * 100_000 + "]" * 100_000,
        "one 512 KiB string": json.dumps("x" * (512 * 1024 - 2)),
        "lone surrogates": '["' + "\\ud800" * 80_000 + '"]',
    }
    views = {}
    for name, body in bodies.items():
        start = time.perf_counter()
        view = cel.response_view(200, {"content-type": "application/json"}, body, True)
        views[name] = view
        report.setdefault("response_view_s", {})[name] = {
            "bytes": len(body.encode()),
            "seconds": round(time.perf_counter() - start, 4),
            "json": "null" if view.json is None else type(view.json).__name__,
        }
    view = views["7k objects"]
    checks = []
    worst_ratio, worst_accepted = 0.0, 0.0
    for kind, text in HOSTILE:
        compiled = cel.compile_expression(text)
        estimated = cel.estimate_cost(compiled, view)
        estimate_us = _per_call_us(lambda c=compiled: cel.estimate_cost(c, view), 0.1)
        entry: dict[str, Any] = {
            "kind": kind,
            "expression": text[:120],
            "estimate_units": estimated,
            "estimate_us": estimate_us,
            "refused": estimated > cel.COST_BUDGET,
        }
        if not entry["refused"]:
            start = time.perf_counter()
            try:
                value = cel.evaluate(compiled, view)
                cel.output_string(value)
                entry["outcome"] = "ok"
            except cel.EvaluationError as error:
                entry["outcome"] = f"error: {error.message[:100]}"
            seconds = time.perf_counter() - start
            entry["seconds"] = round(seconds, 5)
            entry["ns_per_unit"] = round(seconds * 1e9 / max(estimated, 1), 4)
            worst_ratio = max(worst_ratio, entry["ns_per_unit"])
            worst_accepted = max(worst_accepted, seconds)
        checks.append(entry)
    report["expressions"] = checks
    report["cost_budget_units"] = cel.COST_BUDGET
    report["worst_accepted_seconds"] = round(worst_accepted, 4)
    report["worst_ns_per_unit"] = worst_ratio
    # the largest map the budget lets through, measured
    report["largest_map"] = _largest_map(cel)
    return report


def _largest_map(cel: Any) -> dict[str, Any]:
    compiled = cel.compile_expression("response.json.map(i, i)")
    low, high = 1, 10_000
    while low < high:  # the largest n whose estimate is within budget
        middle = (low + high + 1) // 2
        view = cel.ResponseView(200, {}, "[" + ",".join(["0"] * middle) + "]", list(range(middle)))
        if cel.estimate_cost(compiled, view) <= cel.COST_BUDGET:
            low = middle
        else:
            high = middle - 1
    view = cel.ResponseView(200, {}, "[" + ",".join(["0"] * low) + "]", list(range(low)))
    start = time.perf_counter()
    cel.evaluate(compiled, view)
    return {"elements": low, "seconds": round(time.perf_counter() - start, 4)}


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--library", choices=sorted(LIBRARIES), help=argparse.SUPPRESS)
    parser.add_argument("--skip-libraries", action="store_true")
    args = parser.parse_args(argv)
    if args.library:
        print(json.dumps(measure_library(args.library)))
        return
    report: dict[str, Any] = {"python": sys.version.split()[0], "libraries": {}}
    if not args.skip_libraries:
        for library in LIBRARIES:
            done = subprocess.run(
                [sys.executable, "-m", "bench.cel", "--library", library],
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            if done.returncode:
                report["libraries"][library] = {"failed": done.stderr[-2000:]}
            else:
                report["libraries"][library] = json.loads(done.stdout)
    report["engine"] = _engine_report()
    emit(report, args.out)


if __name__ == "__main__":
    main()
