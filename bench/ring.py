"""The operator ring: throughput and CPU per member with 1, 2 and 3 members, and takeovers.

    .venv/bin/python -m bench.ring --members 1 2 3 --searches 150 --concurrency 30
    .venv/bin/python -m bench.ring --members 2 --takeover    # kill -9 and SIGTERM of a member

For each ring size: a fresh control plane (etcd on disk, fsync on), that many members on one
namespace, a warm-up, then ``--searches`` Searches of three providers (50 ms pages) with
``--concurrency`` in flight. Reported: Searches/s, each member's CPU (ms per Search) and RSS,
how many exchanges each member made (its share), and requests sent more than once.

``--takeover`` (2 members or more): a wave of Searches whose providers answer in 4 s; once it is
in flight one member is killed with SIGKILL (then, in a second wave, stopped with SIGTERM), and
the report gives the time from the fault until every Search completed, and the repeats.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from bench.environment import Environment, environment
from bench.kube import cpu_seconds
from bench.longpoll import rss_mib
from bench.report import emit
from durable_search.api.constants import GROUP, SEARCH_PLURAL, VERSION
from tests.support.processes import OperatorProcess

PROVIDERS = ("a", "b", "c")
FINISHED = ("Completed", "Failed", "Terminated")


def create(env: Environment, tag: str, delay: float) -> str:
    name = f"r-{tag}"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Search",
        "metadata": {"name": name},
        "spec": {
            "query": f"ring {tag}",
            "providers": [
                {"name": p, "url": env.site.url(f"{tag}-{p}", delay=delay)} for p in PROVIDERS
            ],
        },
    }
    client.CustomObjectsApi(env.api).create_namespaced_custom_object(
        GROUP, VERSION, env.namespace, SEARCH_PLURAL, body
    )
    return name


def wait_done(env: Environment, name: str, timeout: float = 180) -> str:
    custom = client.CustomObjectsApi(env.api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = custom.get_namespaced_custom_object(
            GROUP, VERSION, env.namespace, SEARCH_PLURAL, name
        )
        phase = str((body.get("status") or {}).get("phase") or "")
        if phase in FINISHED:
            return phase
        time.sleep(0.05)
    return "Timeout"


def run_one(env: Environment, delay: float) -> str:
    return wait_done(env, create(env, uuid.uuid4().hex[:10], delay))


def exchanges(member: OperatorProcess) -> float:
    url = f"http://127.0.0.1:{member.health_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    pattern = r"^durable_search_http_exchanges_total\{[^}]*\} (\S+)$"
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


def repeats(env: Environment, tags: list[str]) -> int:
    hits = env.site.stats()["hits"]
    return sum(max(0, int(hits.get(f"{t}-{p}", 0)) - 1) for t in tags for p in PROVIDERS)


def start_members(env: Environment, count: int, scratch: Path) -> list[OperatorProcess]:
    members = [env.operator]
    for n in range(1, count):
        member = OperatorProcess(
            env.plane.kubeconfig,
            scratch / f"member-{n}.log",
            [
                "--namespace",
                env.namespace,
                "--allow-cidr=127.0.0.0/8",
                "--ring=bench",
                f"--identity=m{n}",
                "--drain-seconds=10",
            ],
            log_level="info",
        )
        members.append(member.start())
    time.sleep(3)  # every member has seen every Lease
    return members


def throughput(env: Environment, members: list[OperatorProcess], args: argparse.Namespace) -> Any:
    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(lambda _: run_one(env, 0.05), range(args.concurrency)))  # warm-up
        cpu_before = [cpu_seconds(m.process.pid) for m in members if m.process]
        done_before = [exchanges(m) for m in members]
        began = time.monotonic()
        phases = list(pool.map(lambda _: run_one(env, 0.05), range(args.searches)))
        elapsed = time.monotonic() - began
    cpu = [
        cpu_seconds(m.process.pid) - c
        for m, c in zip(members, cpu_before, strict=True)
        if m.process
    ]
    done = [exchanges(m) - d for m, d in zip(members, done_before, strict=True)]
    return {
        "searches": args.searches,
        "concurrency": args.concurrency,
        "completed": phases.count("Completed"),
        "searches_per_second": round(args.searches / elapsed, 2),
        "cpu_ms_per_search_by_member": [round(1000 * c / args.searches, 1) for c in cpu],
        "cpu_ms_per_search_all_members": round(1000 * sum(cpu) / args.searches, 1),
        "exchanges_by_member": done,
        "rss_mib_by_member": [round(rss_mib(m.process.pid), 1) for m in members if m.process],
    }


def takeover(env: Environment, members: list[OperatorProcess], how: str, count: int) -> Any:
    tags = [uuid.uuid4().hex[:10] for _ in range(count)]
    names = [create(env, tag, 4.0) for tag in tags]
    time.sleep(1.5)  # in flight
    victim = members[-1]
    assert victim.process is not None
    faulted = time.monotonic()
    if how == "kill9":
        victim.kill()
    else:
        victim.process.send_signal(signal.SIGTERM)
    with ThreadPoolExecutor(16) as pool:
        phases = list(pool.map(lambda name: wait_done(env, name), names))
    recovered = time.monotonic() - faulted
    if how == "sigterm":
        victim.process.wait(30)
    victim.start()  # back for the next wave
    time.sleep(3)
    return {
        "fault": how,
        "searches": count,
        "completed": phases.count("Completed"),
        "seconds_from_fault_to_all_completed": round(recovered, 2),
        "requests_sent_more_than_once": repeats(env, tags),
        "requests": count * len(PROVIDERS),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--searches", type=int, default=150)
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument("--takeover", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {"runs": []}
    for count in args.members:
        print(f"== a ring of {count}", file=sys.stderr, flush=True)
        with environment(operator_args=("--ring=bench", "--identity=m0")) as env:
            scratch = env.plane.state_dir.parent
            members = start_members(env, count, scratch)
            run: dict[str, Any] = {"members": count, "throughput": throughput(env, members, args)}
            if args.takeover and count > 1:
                run["takeovers"] = [takeover(env, members, how, 12) for how in ("kill9", "sigterm")]
            for member in members[1:]:
                member.stop()
            report["runs"].append(run)
            print(run, file=sys.stderr, flush=True)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
