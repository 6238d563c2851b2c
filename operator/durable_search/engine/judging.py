"""Judging an HTTP answer with the spec's CEL: did it succeed, is it complete, what are its outputs.

Pure. ``engine.cel`` compiles and evaluates; this module says which expression of an HttpTask
spec answers which question, builds the ``response`` they see from what the executor kept, and
turns evaluation errors into the "false, with a message" the contract asks for. The state
machine (``engine.httptask``) decides what follows from the answers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from durable_search.api.models import HttpTaskSpec, Output, ProviderSpec
from durable_search.api.status import Outputs
from durable_search.engine import cel
from durable_search.engine.bounds import cut

ERROR_MAX = 300  # characters of one evaluation error quoted in a message
# Cost units (about ns here) for every evaluation over one answer together: two evaluations
# at engine.cel's per-evaluation limit.
ANSWER_BUDGET = 2 * cel.COST_BUDGET


@dataclass(frozen=True)
class Expressions:
    """A spec's expressions, compiled (from ``engine.cel``'s cache: compiling again is cheap)."""

    success: cel.Compiled | None
    complete_when: cel.Compiled | None
    outputs: tuple[tuple[str, cel.Compiled], ...]

    @property
    def any(self) -> bool:
        return bool(self.success or self.complete_when or self.outputs)


def compile_spec(spec: HttpTaskSpec) -> Expressions:
    """Every expression of ``spec`` compiled; :class:`cel.InvalidExpression` names the field.

    Conditions (``successCondition``, ``async.completeWhen``) must give a bool.
    """
    return compile_fields(spec.success_condition, spec.async_.complete_when, spec.outputs)


def compile_provider(provider: ProviderSpec) -> Expressions:
    """A provider's expressions, as the HttpTasks made from it will have them."""
    complete = (provider.async_ or {}).get("completeWhen")
    return compile_fields(
        provider.success_condition,
        None if complete is None else str(complete),
        provider.outputs,
    )


def compile_fields(
    success: str | None, complete: str | None, outputs: Sequence[Output]
) -> Expressions:
    def one(where: str, text: str, condition: bool) -> cel.Compiled:
        try:
            return cel.compile_condition(text) if condition else cel.compile_expression(text)
        except cel.InvalidExpression as error:
            raise cel.InvalidExpression(f"{where}: {error.message}") from None

    return Expressions(
        success=one("spec.successCondition", success, True) if success is not None else None,
        complete_when=one("spec.async.completeWhen", complete, True)
        if complete is not None
        else None,
        outputs=tuple(
            (o.name, one(f"spec.outputs[{o.name}]", o.expression, False)) for o in outputs
        ),
    )


def body_text(
    text: str, encoding: str, truncated: bool, content_encoding: str | None
) -> tuple[str, bool]:
    """The body as CEL sees it, and whether it is the whole body (then ``json`` may be set).

    A UTF-8 body stored as base64 (cheaper than escaping markup) is decoded back to its text;
    a body that is not UTF-8, or is kept in a content coding we did not decode, is seen as
    its base64 form and is never complete JSON.
    """
    if content_encoding:
        return text, False
    if encoding != "base64":
        return text, not truncated
    try:
        decoded = base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return text, False
    if "\x00" in decoded:
        return text, False
    return decoded, not truncated


def view(
    status_code: int,
    headers: Mapping[str, str],
    text: str,
    encoding: str,
    truncated: bool,
    content_encoding: str | None,
) -> cel.ResponseView:
    """The ``response`` every expression of one answer sees."""
    body, complete = body_text(text, encoding, truncated, content_encoding)
    return cel.response_view(status_code, headers, body, complete)


class Judge:
    """The expressions of one spec over one answer, within one budget for them all.

    Each evaluation is bounded by ``engine.cel`` (about 0.15 s of this machine at most), but a
    task may have 18 expressions, and cel-cpp holds the GIL: the operator's event loop stands
    still while they run. So all of one answer's evaluations share :data:`ANSWER_BUDGET`,
    spent in the order asked (completeWhen, successCondition, then the outputs in order); one
    that would overrun it is refused like an evaluation error.
    """

    def __init__(self, expressions: Expressions, response: cel.ResponseView) -> None:
        self.expressions = expressions
        self.response = response
        self.remaining = ANSWER_BUDGET

    def _evaluate(self, compiled: cel.Compiled) -> object:
        cost = cel.estimate_cost(compiled, self.response)
        if cost > self.remaining:
            raise cel.EvaluationError(
                f"this answer's expressions together could cost too much (limit "
                f"{ANSWER_BUDGET / 1e9:.3g} s of work for all of them): this one is estimated "
                f"at {cost / 1e9:.3g} s, and {max(self.remaining, 0) / 1e9:.3g} s are left"
            )
        self.remaining -= cost
        return cel.evaluate(compiled, self.response, cost)

    def _condition(self, compiled: cel.Compiled) -> tuple[bool, str | None]:
        try:
            value = self._evaluate(compiled)
        except cel.EvaluationError as error:
            return False, cut(error.message, ERROR_MAX)
        if isinstance(value, bool):
            return value, None
        return False, f"the condition gave a {type(value).__name__}, not a bool"

    def complete(self) -> tuple[bool, str | None]:
        """Whether ``async.completeWhen`` holds (true when there is none); an error is false."""
        if self.expressions.complete_when is None:
            return True, None
        return self._condition(self.expressions.complete_when)

    def succeeded(self) -> tuple[bool, str | None]:
        """Whether ``successCondition`` holds (the sample's rule when there is none)."""
        if self.expressions.success is None:
            return self.response.status_code == 200, None
        return self._condition(self.expressions.success)

    def outputs(self) -> tuple[Outputs, list[str]]:
        """``status.outputs`` (within ``engine.cel``'s bounds) and a message per failed output.

        An output whose evaluation fails is left out; one that does not fit in the 4 KiB of
        all outputs is cut (marked `` …``) or, when not even its name fits, left out and named.
        """
        values: list[tuple[str, object]] = []
        problems: list[str] = []
        for name, compiled in self.expressions.outputs:
            try:
                values.append((name, self._evaluate(compiled)))
            except cel.EvaluationError as error:
                problems.append(f"output {name}: {cut(error.message, ERROR_MAX)}")
        rendered = cel.render_outputs(values)
        left_out = [name for name, _ in values if name not in rendered]
        if left_out:
            problems.append(
                f"outputs past {cel.OUTPUTS_BUDGET} bytes in all left out: {', '.join(left_out)}"
            )
        return rendered, problems
