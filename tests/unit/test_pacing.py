"""The pure pacing logic: reservation token buckets per provider, Retry-After holds per origin."""

from __future__ import annotations

import math

import pytest

from durable_search.engine.pacing import Pacer, TokenBucket, hold_seconds, share


def test_a_bucket_lets_the_burst_through_then_spaces_requests_at_the_rate() -> None:
    bucket = TokenBucket.full(rate=2, burst=3, now=0)
    waits = [bucket.reserve(0) for _ in range(6)]
    assert waits == [0, 0, 0, 0.5, 1.0, 1.5]


def test_concurrent_reservations_queue_in_order_without_polling() -> None:
    pacer = Pacer()
    waits = [pacer.reserve("p", 2, 1, now=10.0) for _ in range(8)]
    assert waits == [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    # Time passes: the debt is paid back at the rate, never faster.
    assert pacer.reserve("p", 2, 1, now=12.0) == pytest.approx(2.0)


def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    bucket = TokenBucket.full(rate=1, burst=2, now=0)
    assert [bucket.reserve(0), bucket.reserve(0)] == [0, 0]
    waits = [bucket.reserve(100) for _ in range(3)]
    assert waits == [0, 0, 1.0]


def test_a_request_that_would_wait_past_its_limit_takes_no_token() -> None:
    pacer = Pacer()
    assert pacer.reserve("p", 1, 1, now=0) == 0
    assert pacer.reserve("p", 1, 1, now=0, limit=0.5) is None  # it would wait 1 s
    # The refused one left its slot to the next request.
    assert pacer.reserve("p", 1, 1, now=0) == 1.0


def test_buckets_are_per_provider() -> None:
    pacer = Pacer()
    assert pacer.reserve(("ns", "a"), 1, 1, now=0) == 0
    assert pacer.reserve(("ns", "b"), 1, 1, now=0) == 0
    assert pacer.reserve(("other", "a"), 1, 1, now=0) == 0
    assert pacer.reserve(("ns", "a"), 1, 1, now=0) == 1.0


def test_an_edited_rate_applies_to_the_next_reservation_and_the_debt_carries_over() -> None:
    pacer = Pacer()
    for _ in range(3):
        pacer.reserve("p", 1, 1, now=0)  # tokens now -2
    assert pacer.reserve("p", 10, 1, now=0) == pytest.approx(0.3)  # (1 - -2) / 10
    # A larger burst does not hand out tokens it never earned.
    assert pacer.reserve("p", 10, 5, now=0) == pytest.approx(0.4)


def test_a_hold_delays_every_task_for_that_origin_clamped_to_each_tasks_max_wait() -> None:
    pacer = Pacer()
    pacer.hold(("ns", "https://a:443"), until=10.0)
    assert pacer.held_for(("ns", "https://a:443"), now=4.0, max_wait=30) == 6.0
    assert pacer.held_for(("ns", "https://a:443"), now=4.0, max_wait=1) == 1.0
    assert pacer.held_for(("ns", "https://b:443"), now=4.0, max_wait=30) == 0.0
    assert pacer.held_for(("other", "https://a:443"), now=4.0, max_wait=30) == 0.0
    assert pacer.held_for(("ns", "https://a:443"), now=10.0, max_wait=30) == 0.0


def test_a_later_hold_wins_and_an_earlier_one_never_shortens_it() -> None:
    pacer = Pacer()
    pacer.hold("o", until=10.0)
    pacer.hold("o", until=5.0)
    assert pacer.held_for("o", now=0, max_wait=math.inf) == 10.0
    pacer.hold("o", until=20.0)
    assert pacer.held_for("o", now=0, max_wait=math.inf) == 20.0


@pytest.mark.parametrize(
    ("code", "retry_after", "max_interval", "held"),
    [
        (429, 5.0, 30.0, 5.0),
        (503, 5.0, 30.0, 5.0),
        (429, 120.0, 30.0, 30.0),  # clamped to maxIntervalSeconds
        (429, None, 30.0, None),  # no Retry-After: no hold (the task's own backoff applies)
        (429, 0.0, 30.0, None),
        (500, 5.0, 30.0, None),
        (200, 5.0, 30.0, None),
    ],
)
def test_only_429_and_503_with_a_retry_after_hold_an_origin(
    code: int, retry_after: float | None, max_interval: float, held: float | None
) -> None:
    assert hold_seconds(code, retry_after, max_interval) == held


def test_the_tables_stay_bounded() -> None:
    pacer = Pacer(max_keys=3)
    for i in range(10):
        pacer.reserve(i, 1, 1, now=0)
        pacer.hold(i, until=100)
    assert len(pacer) == 6
    # The most recent survive.
    assert pacer.held_for(9, now=0, max_wait=math.inf) == 100


def test_a_ring_members_share_is_the_rate_divided_by_the_live_members() -> None:
    assert share(6, 3) == 2
    assert share(6, 0) == 6


class FakeProviders:
    def __init__(self, specs: dict[str, dict[str, object]]) -> None:
        self.specs = specs
        self.reads = 0

    async def get_provider(self, namespace: str, name: str) -> dict[str, object] | None:
        self.reads += 1
        spec = self.specs.get(name)
        return {"spec": spec} if spec is not None else None


async def test_the_operator_paces_children_of_a_rate_limited_provider_and_reads_it_rarely() -> None:
    from durable_search.api.constants import ANNOTATION_SEARCH_PROVIDER
    from durable_search.controller.pacing import LIMIT_TTL_SECONDS, Pacing

    now = [100.0]
    api = FakeProviders({"metered": {"url": "u", "rateLimit": {"requestsPerSecond": 4}}})
    pacing = Pacing(api, clock=lambda: now[0])  # type: ignore[arg-type]
    child = {"annotations": {ANNOTATION_SEARCH_PROVIDER: "metered"}}
    waits = [await pacing.delay("ns", child, "http://a:80", 30, 60) for _ in range(4)]
    assert waits == [0, 0.25, 0.5, 0.75]
    assert api.reads == 1  # cached
    # Not one of its children, or a provider without a limit: no wait.
    assert await pacing.delay("ns", {}, "http://a:80", 30, 60) == 0
    # A wait past the deadline takes no token.
    assert await pacing.delay("ns", child, "http://a:80", 30, 0.5) is None
    now[0] += LIMIT_TTL_SECONDS + 1
    api.specs["metered"] = {"url": "u"}  # the limit removed: read again, no wait
    assert await pacing.delay("ns", child, "http://a:80", 30, 60) == 0
    assert api.reads == 2


async def test_a_429_with_retry_after_holds_the_origin_for_the_namespace() -> None:
    from durable_search.controller.pacing import Pacing

    now = [0.0]
    pacing = Pacing(FakeProviders({}), clock=lambda: now[0])  # type: ignore[arg-type]
    pacing.answered("ns", "http://a:80", 429, 5.0, max_interval=30)
    assert await pacing.delay("ns", {}, "http://a:80", 30, 60) == 5.0
    assert await pacing.delay("ns", {}, "http://a:80", 2, 60) == 2.0  # its own maxInterval
    assert await pacing.delay("other", {}, "http://a:80", 30, 60) == 0
    assert await pacing.delay("ns", {}, "http://b:80", 30, 60) == 0
    # A hold past the deadline: no send before it.
    assert await pacing.delay("ns", {}, "http://a:80", 30, 1) is None
