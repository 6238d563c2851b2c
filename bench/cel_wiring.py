"""What CEL adds to recording one answer: ``engine.httptask.after_exchange`` with and without it.

    .venv/bin/python -m bench.cel_wiring [--out bench/results/cel-wiring.json]

Pure CPU, no cluster: the state machine's step for one final 200 (a JSON search answer of
about 1 KiB, then of about 100 KiB), with no expression (the sample's rule, in Python), with a
``successCondition``, with it and three ``outputs``, and with ``async.completeWhen`` too; and
``decide``'s check that every expression compiles (a cache hit: what each loop pays). Figures
are CPU time (``time.process_time``: other processes on the machine do not inflate them), the
median of 7 runs, in microseconds per call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import emit
from durable_search.api.models import HttpTaskSpec
from durable_search.engine import cel, judging
from durable_search.engine import httptask as engine

CREATED = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
URL = "https://site.example/search?q=x"

SPECS: dict[str, dict[str, Any]] = {
    "no expression": {},
    "successCondition": {"successCondition": "response.json.hits > 0"},
    "successCondition + 3 outputs": {
        "successCondition": "response.json.hits > 0",
        "outputs": [
            {"name": "hits", "expression": "response.json.hits"},
            {"name": "first", "expression": "response.json.items[0].title"},
            {"name": "ids", "expression": "response.json.items.map(i, i.id)"},
        ],
    },
    "+ completeWhen": {
        "successCondition": "response.json.hits > 0",
        "outputs": [
            {"name": "hits", "expression": "response.json.hits"},
            {"name": "first", "expression": "response.json.items[0].title"},
            {"name": "ids", "expression": "response.json.items.map(i, i.id)"},
        ],
        "async": {"completeWhen": "response.json.status == 'succeeded'"},
    },
}


EVALUATIONS = (
    "response.statusCode == 200",
    "response.json.hits > 0",
    "response.json.items[0].title",
    "response.json.items.map(i, i.id)",
)


def body(items: int) -> str:
    rows = [{"id": i, "title": f"result number {i}", "url": f"https://x/{i}"} for i in range(items)]
    return json.dumps({"status": "succeeded", "hits": items, "items": rows})


def per_call(function: Callable[[], object], seconds: float = 0.3) -> float:
    """Median microseconds per call over 7 runs of about ``seconds`` each."""
    function()
    count = 1
    while True:
        begun = time.process_time()
        for _ in range(count):
            function()
        if time.process_time() - begun > seconds / 10:
            break
        count *= 2
    runs = []
    for _ in range(7):
        begun = time.process_time()
        for _ in range(count):
            function()
        runs.append((time.process_time() - begun) / count * 1e6)
    return round(statistics.median(runs), 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"unit": "CPU microseconds per call (median of 7 runs)"}
    for label, items in (("1 KiB JSON", 10), ("100 KiB JSON", 1500)):
        text = body(items)
        answer = engine.HttpAnswer(
            status_code=200,
            reason="OK",
            headers={"content-type": "application/json"},
            body=engine.StoredBody(text, "utf-8", len(text), False),
        )
        figures: dict[str, float] = {}
        for name, fields in SPECS.items():
            spec = HttpTaskSpec.parse({"request": {"url": URL}, **fields})
            sent = engine.decide(spec, {}, CREATED, CREATED)
            assert isinstance(sent, engine.Send)
            exchange = engine.Exchange(answer, URL, CREATED, 5)
            status = engine.after_exchange(spec, {}, CREATED, sent, exchange, CREATED)
            assert status["outcome"] == "Succeeded", status

            def step(
                spec: HttpTaskSpec = spec,
                sent: engine.Send = sent,
                exchange: engine.Exchange = exchange,
            ) -> object:
                return engine.after_exchange(spec, {}, CREATED, sent, exchange, CREATED)

            figures[f"after_exchange, {name}"] = per_call(step)
        figures["response view alone (parses the JSON)"] = per_call(answer.view)
        response = answer.view()
        for expression in EVALUATIONS:
            compiled = cel.compile_expression(expression)
            figures[f"one evaluation: {expression}"] = per_call(
                lambda compiled=compiled, response=response: cel.evaluate(compiled, response)
            )
        report[f"{label} ({len(text)} bytes)"] = figures
    spec = HttpTaskSpec.parse({"request": {"url": URL}, **SPECS["+ completeWhen"]})
    report["decide's compile check, 5 expressions (cache hit)"] = per_call(
        lambda: judging.compile_spec(spec)
    )
    emit(report, args.out)


if __name__ == "__main__":
    main()
