"""Fault runs: break something during fan-outs, and count what completed and what was repeated.

    .venv/bin/python -m bench.chaos --fault kill9 --cycles 20
    .venv/bin/python -m bench.chaos --fault apiserver --cycles 10
    .venv/bin/python -m bench.chaos --fault blackhole --cycles 2 --hold-seconds 90
    .venv/bin/python -m bench.chaos --fault kill9 --cycles 10 --ring 2    # a ring of two

Each cycle creates Searches over three providers (a 202 job polled every second, a site that
answers 503 + Retry-After once, a plain 50 ms page), waits a random moment while they run, then:

- ``kill9``: kills the operator with SIGKILL and starts a new one;
- ``apiserver``: kills kube-apiserver with SIGKILL and starts it again (same port, same etcd);
- ``blackhole``: the operator reaches the API server through a loopback TCP proxy that stops
  forwarding every byte, both ways, without closing anything, for ``--hold-seconds``: its
  watches hang open, its writes get no answer; then the bytes flow again.

At the end every Search must be Completed; the demo site's counters tell how many requests were
sent more than once, and the report says how long the Searches took to complete after the last
fault ended (recovery).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client

from bench.environment import Environment, environment
from bench.faults import BlackHoleProxy, kubeconfig_through, target_of
from bench.report import emit
from durable_search.api.constants import GROUP, SEARCH_PLURAL, VERSION
from tests.support.processes import OperatorProcess

# Requests each provider needs when nothing goes wrong: key suffix -> first requests.
EXPECTED_FIRST_REQUESTS = {"job": 1, "flaky": 2, "page": 1}
FINISHED = ("Completed", "Failed", "Terminated")


def create_searches(env: Environment, count: int) -> list[str]:
    custom = client.CustomObjectsApi(env.api)
    names = []
    for _ in range(count):
        tag = uuid.uuid4().hex[:8]
        spec = {
            "query": f"chaos {tag}",
            "deadlineSeconds": 300,
            "providers": [
                {"name": "job", "url": env.site.url(f"{tag}-job", **{"async": 3, "retryafter": 1})},
                {"name": "flaky", "url": env.site.url(f"{tag}-flaky", fail=1, retryafter=1)},
                {"name": "page", "url": env.site.url(f"{tag}-page", delay=0.05)},
            ],
        }
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Search",
            "metadata": {"name": f"c-{tag}"},
            "spec": spec,
        }
        for attempt in range(60):  # the API server may be down or held right now
            try:
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, env.namespace, SEARCH_PLURAL, body
                )
                break
            except Exception:
                if attempt == 59:
                    raise
                time.sleep(1)
        names.append(body["metadata"]["name"])
    return names


def phases(env: Environment) -> dict[str, str]:
    custom = client.CustomObjectsApi(env.api)
    try:
        listed = custom.list_namespaced_custom_object(GROUP, VERSION, env.namespace, SEARCH_PLURAL)
    except Exception:
        return {}
    return {
        i["metadata"]["name"]: (i.get("status") or {}).get("phase", "Pending")
        for i in listed["items"]
    }


class Faults:
    """One kind of fault, injected once per cycle."""

    def __init__(
        self,
        env: Environment,
        kind: str,
        hold_seconds: float,
        scratch: Path,
        others: list[OperatorProcess],
    ) -> None:
        self.env, self.kind, self.hold_seconds = env, kind, hold_seconds
        self.others = others  # the other members of a ring (none standalone)
        self.proxy: BlackHoleProxy | None = None
        self.durations: list[float] = []
        self.injected = 0
        if kind == "blackhole":
            # The operator's every API connection (kopf's watches and our writes) goes through it.
            self.proxy = BlackHoleProxy(*target_of(env.plane.kubeconfig)).start()
            proxied = kubeconfig_through(env.plane.kubeconfig, self.proxy, scratch / "proxied")
            env.operator.stop()
            env.operator = OperatorProcess(
                proxied, scratch / "operator-proxied.log", env.operator.args, log_level="info"
            ).start()

    def inject(self) -> None:
        began = time.monotonic()
        if self.kind == "kill9":
            # In a ring the victim rotates over the members.
            members = [self.env.operator, *self.others]
            victim = members[self.injected % len(members)]
            victim.kill()
            victim.start()
        elif self.kind == "apiserver":
            self.env.plane.restart_apiserver(kill=True)
        else:
            assert self.proxy is not None
            self.proxy.hold()
            time.sleep(self.hold_seconds)
            self.proxy.release()
        self.injected += 1
        self.durations.append(time.monotonic() - began)

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fault", choices=["kill9", "apiserver", "blackhole"], default="kill9")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--searches-per-cycle", type=int, default=5)
    parser.add_argument("--hold-seconds", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--ring", type=int, default=1, help="operators in a ring (1: one standalone operator)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    ring_args = ("--ring=chaos", "--identity=m0") if args.ring > 1 else ()

    with environment(namespace="chaos", operator_args=ring_args) as env:
        others = [
            OperatorProcess(
                env.plane.kubeconfig,
                env.plane.state_dir / f"member-{n}.log",
                [
                    "--namespace=chaos",
                    "--allow-cidr=127.0.0.0/8",
                    "--ring=chaos",
                    f"--identity=m{n}",
                    "--drain-seconds=10",
                ],
                log_level="info",
            ).start()
            for n in range(1, args.ring)
        ]
        time.sleep(3 if others else 0)  # the members have seen each other's Leases
        faults = Faults(env, args.fault, args.hold_seconds, env.plane.state_dir, others)
        names: list[str] = []
        try:
            for cycle in range(args.cycles):
                names += create_searches(env, args.searches_per_cycle)
                time.sleep(rng.uniform(0.1, 1.5))
                faults.inject()
                print(f"cycle {cycle + 1}/{args.cycles}: {args.fault}", file=sys.stderr, flush=True)
            ended = time.monotonic()
            deadline = ended + 300
            seen: dict[str, str] = {}
            while time.monotonic() < deadline:
                seen = phases(env)
                if all(seen.get(n) in FINISHED for n in names):
                    break
                time.sleep(0.25)
            recovery = time.monotonic() - ended
            stats = env.site.stats()
        finally:
            faults.stop()
            for member in others:
                member.stop()

    hits = stats["hits"]
    report: dict[str, Any] = {
        "fault": args.fault,
        "ring_members": args.ring,
        "cycles": args.cycles,
        "searches": len(names),
        "completed": sum(1 for n in names if seen.get(n) == "Completed"),
        "lost": sum(1 for n in names if seen.get(n) not in FINISHED),
        "other_phases": {n: p for n, p in seen.items() if p != "Completed"},
        "first_requests_repeated": {
            kind: sum(max(0, hits.get(f"{name[2:]}-{kind}", 0) - expected) for name in names)
            for kind, expected in EXPECTED_FIRST_REQUESTS.items()
        },
        "providers_with_fewer_requests_than_expected": {
            kind: sum(1 for name in names if hits.get(f"{name[2:]}-{kind}", 0) < expected)
            for kind, expected in EXPECTED_FIRST_REQUESTS.items()
        },
        "polls_total": sum(stats["polls"].values()),
        "fault_seconds_max": round(max(faults.durations, default=0.0), 2),
        "recovery_seconds_after_last_fault": round(recovery, 2),
    }
    emit(report, args.out)
    return 0 if report["completed"] == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
