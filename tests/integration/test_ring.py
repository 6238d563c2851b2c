"""An operator ring on the real control plane: shares, no repeats, kill -9, join, graceful leave.

Every Search of a wave has its own demo-site keys, so the site's counters say exactly how many
times each provider's request was sent.
"""

from __future__ import annotations

import re
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client

from durable_search.engine.ring import CLAIMED_BY_ANNOTATION, owner_of
from tests.support.demo import DemoSite
from tests.support.processes import OperatorProcess
from tests.support.searches import Searches
from tests.support.waiting import eventually

LOOPBACK = "--allow-cidr=127.0.0.0/8"
PROVIDERS = ("a", "b")


def member(
    start_operator: Callable[..., OperatorProcess],
    namespace: str,
    identity: str,
    drain_seconds: int = 10,
) -> OperatorProcess:
    return start_operator(
        namespace,
        LOOPBACK,
        "--ring=test",
        f"--identity={identity}",
        f"--drain-seconds={drain_seconds}",
    )


def wave(searches: Searches, site: DemoSite, tag: str, count: int, delay: float) -> list[str]:
    return [
        searches.create(
            {
                "query": f"{tag}-{n}",
                "providers": [
                    {"name": p, "url": site.url(f"{tag}-{n}-{p}", delay=delay)} for p in PROVIDERS
                ],
            }
        )
        for n in range(count)
    ]


def sends(site: DemoSite, tag: str, count: int) -> list[int]:
    hits = site.stats()["hits"]
    return [int(hits.get(f"{tag}-{n}-{p}", 0)) for n in range(count) for p in PROVIDERS]


def wait_all(searches: Searches, names: list[str], timeout: float) -> None:
    for name in names:
        body = searches.wait(name, timeout=timeout)
        assert body["status"]["phase"] == "Completed", body["status"]


def exchanges(process: OperatorProcess) -> float:
    url = f"http://127.0.0.1:{process.health_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^durable_search_http_exchanges_total\{[^}]*\} (\S+)$", text, re.M)
    )


def leases(api_client: client.ApiClient, namespace: str) -> set[str]:
    listed = client.CoordinationV1Api(api_client).list_namespaced_lease(
        namespace, label_selector="durablesearch.dev/ring=test"
    )
    return {lease.metadata.name for lease in listed.items}


@pytest.mark.parametrize("size", [2, 3])
def test_members_share_the_work_by_the_hash_and_send_each_request_once(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
    size: int,
) -> None:
    searches = Searches(api_client, isolated_namespace)
    members = [member(start_operator, isolated_namespace, f"m{n}") for n in range(size)]
    assert leases(api_client, isolated_namespace) == {f"test-m{n}" for n in range(size)}
    time.sleep(2)  # every member has seen every Lease
    tag = f"share{size}"
    names = wave(searches, demo_site, tag, 24, 0.05)
    wait_all(searches, names, 60)
    assert sends(demo_site, tag, 24) == [1] * 48, "every request sent exactly once"
    # The hash decides the shares (its fairness over many keys is a unit test): with 24 Searches
    # one member may rightly get 3 and another 12, so the check is that every member sent exactly
    # the requests of the Searches whose uid it owns, no more (nothing taken from another member)
    # and no less (nothing left to another).
    identities = [f"m{n}" for n in range(size)]
    owned = [owner_of(searches.get(name)["metadata"]["uid"], identities) for name in names]
    expected = [float(len(PROVIDERS) * owned.count(identity)) for identity in identities]
    assert [exchanges(m) for m in members] == expected, "each member sent its own share alone"
    # Every child names its holder: created by its Search's owner (the annotation) and its
    # outcome recorded by the same member (status.claim.holder).
    claims = {
        (
            owner,
            child["metadata"]["annotations"].get(CLAIMED_BY_ANNOTATION),
            child["status"]["claim"]["holder"],
        )
        for name, owner in zip(names, owned, strict=True)
        for child in searches.children(name).values()
    }
    assert claims == {(i, i, i) for i in set(owned)}, "each claim names the owning member"


def test_kill_9_of_a_member_mid_wave_completes_every_search_with_at_most_one_repeat(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    searches = Searches(api_client, isolated_namespace)
    doomed = member(start_operator, isolated_namespace, "k1")
    member(start_operator, isolated_namespace, "k2")
    time.sleep(2)
    names = wave(searches, demo_site, "kill", 12, 2.0)
    eventually(lambda: sum(sends(demo_site, "kill", 12)) >= 12, message="the wave is in flight")
    doomed.kill()
    wait_all(searches, names, 90)
    counts = sends(demo_site, "kill", 12)
    assert min(counts) >= 1 and max(counts) <= 2, f"resent at most once each: {counts}"


def test_a_member_that_joins_takes_its_share_without_repeats(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    searches = Searches(api_client, isolated_namespace)
    member(start_operator, isolated_namespace, "j1")
    first_wave = wave(searches, demo_site, "join1", 8, 8.0)
    eventually(lambda: sum(sends(demo_site, "join1", 8)) >= 8, message="the first wave is sent")
    joined = member(start_operator, isolated_namespace, "j2")
    time.sleep(2)
    second_wave = wave(searches, demo_site, "join2", 16, 0.05)
    wait_all(searches, first_wave + second_wave, 90)
    assert sends(demo_site, "join1", 8) == [1] * 16, "what was in flight was not resent"
    assert sends(demo_site, "join2", 16) == [1] * 32
    # The newcomer sent exactly the requests of the new Searches it owns: its share of the new
    # work, and nothing of the first wave (which its first owner had in flight and recorded).
    owned = [owner_of(searches.get(name)["metadata"]["uid"], ["j1", "j2"]) for name in second_wave]
    assert exchanges(joined) == float(len(PROVIDERS) * owned.count("j2"))


def test_a_graceful_leave_hands_the_work_over_without_repeats(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    searches = Searches(api_client, isolated_namespace)
    leaving = member(start_operator, isolated_namespace, "g1")
    member(start_operator, isolated_namespace, "g2")
    time.sleep(2)
    names = wave(searches, demo_site, "leave", 12, 6.0)
    eventually(lambda: sum(sends(demo_site, "leave", 12)) >= 12, message="the wave is in flight")
    assert leaving.process is not None
    leaving.process.send_signal(signal.SIGTERM)
    leaving.process.wait(20)
    assert "test-g1" not in leases(api_client, isolated_namespace), "the Lease is deleted"
    wait_all(searches, names, 60)
    assert sends(demo_site, "leave", 12) == [1] * 24, "nothing in flight was sent twice"


def test_a_leave_past_its_drain_cancels_the_rest_and_the_other_member_sends_each_once_more(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    searches = Searches(api_client, isolated_namespace)
    leaving = member(start_operator, isolated_namespace, "d1", drain_seconds=1)
    member(start_operator, isolated_namespace, "d2")
    time.sleep(2)
    # One Search at a time until the leaver owns one (the hash of the uid decides), at most 8:
    # 16 requests a member at most, within the operator's 16 connections per host, so every
    # request is in flight at once (one past them waits for a connection, and for a page).
    names: list[str] = []
    owned: list[str] = []
    while len(names) < 4 or ("d1" not in owned and len(names) < 8):
        (name,) = wave(searches, demo_site, f"drain{len(names)}", 1, 10.0)
        names.append(name)
        owned.append(owner_of(searches.get(name)["metadata"]["uid"], ["d1", "d2"]))
    assert "d1" in owned, "the leaver owns none of 8 Searches (1 chance in 256)"

    def requests() -> list[int]:
        return [count for n in range(len(names)) for count in sends(demo_site, f"drain{n}", 1)]

    eventually(lambda: min(requests()) >= 1, message="the wave is in flight")
    assert leaving.process is not None
    stopped = time.monotonic()
    leaving.process.send_signal(signal.SIGTERM)
    leaving.process.wait(20)
    # Its 10 s pages were cancelled after the 1 s drain (kopf alone would wait 5 s more).
    assert time.monotonic() - stopped < 5, "the leaver cancelled what was left after its drain"
    wait_all(searches, names, 60)
    # The leaver's pages could not finish within its 1 s drain: each was cancelled, and the
    # other member sent it exactly once more; the other member's own were sent once.
    assert requests() == [2 if owner == "d1" else 1 for owner in owned for _ in PROVIDERS]


def refused(kubeconfig: Path, tmp_path: Path, namespace: str, *args: str) -> str:
    """Start an operator that must refuse: its exit code is 1; its log."""
    log = tmp_path / f"refused-{len(list(tmp_path.glob('refused-*')))}.log"
    process = OperatorProcess(kubeconfig, log, [f"--namespace={namespace}", LOOPBACK, *args])
    assert process.launch().wait(60) == 1, process.tail()
    return log.read_text()


def test_a_standalone_operator_and_a_ring_refuse_to_run_beside_each_other(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
    kubeconfig: Path,
    tmp_path: Path,
) -> None:
    searches = Searches(api_client, isolated_namespace)
    standalone = start_operator(isolated_namespace, LOOPBACK)
    log = refused(kubeconfig, tmp_path, isolated_namespace, "--ring=test", "--identity=late")
    assert "ring test cannot run beside a standalone operator" in log
    assert "run every operator of these namespaces with the same --ring" in log
    assert leases(api_client, isolated_namespace) == set(), "the refused member left no Lease"
    names = wave(searches, demo_site, "solo", 2, 0.05)
    wait_all(searches, names, 30)
    assert sends(demo_site, "solo", 2) == [1] * 4, "the standalone operator alone sent them"

    standalone.stop()  # a graceful stop deletes its Lease: a ring may start at once
    ring_member = member(start_operator, isolated_namespace, "r1")
    assert "waiting up to" not in ring_member.log.read_text()
    log = refused(kubeconfig, tmp_path, isolated_namespace)
    assert "a standalone operator cannot run beside ring test (r1, Lease test-r1" in log
    names = wave(searches, demo_site, "ring", 2, 0.05)
    wait_all(searches, names, 30)
    assert sends(demo_site, "ring", 2) == [1] * 4, "the ring alone sent them"


def test_the_ttl_of_a_finished_search_outlives_the_member_that_owned_it(
    api_client: client.ApiClient,
    isolated_namespace: str,
    demo_site: DemoSite,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    searches = Searches(api_client, isolated_namespace)
    members = {
        identity: member(start_operator, isolated_namespace, identity) for identity in ("t1", "t2")
    }
    time.sleep(2)
    name = searches.create(
        {
            "query": "ttl",
            "ttlSecondsAfterFinished": 3,
            "providers": [{"name": "a", "url": demo_site.url("ring-ttl")}],
        }
    )
    body = searches.wait(name, timeout=30)
    assert body["status"]["phase"] == "Completed"
    owner = owner_of(body["metadata"]["uid"], sorted(members))
    assert owner is not None
    members[owner].kill()  # before its TTL is due: the other member must delete it
    eventually(lambda: searches.gone(name), timeout=45, message="deleted after its owner died")
