"""kill -9 the operator during fan-outs, restart it, and count what was completed and repeated.

    .venv/bin/python -m bench.chaos --cycles 20 --searches-per-cycle 5

Each cycle creates Searches over three providers (a 202 job polled every second, a site that
answers 503 + Retry-After once, a plain 50 ms page), waits a random moment while they run,
kills the operator with SIGKILL and starts a new one. At the end every Search must be
Completed; the demo site's counters tell how many requests were sent more than once.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from pathlib import Path

from kubernetes import client

from bench.environment import environment
from bench.report import emit
from durable_search.api.constants import GROUP, SEARCH_PLURAL, VERSION

# Requests each provider needs when nothing goes wrong: key suffix -> first requests.
EXPECTED_FIRST_REQUESTS = {"job": 1, "flaky": 2, "page": 1}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--searches-per-cycle", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with environment(namespace="chaos") as env:
        custom = client.CustomObjectsApi(env.api)
        names: list[str] = []
        for cycle in range(args.cycles):
            for _ in range(args.searches_per_cycle):
                tag = uuid.uuid4().hex[:8]
                name = f"c-{tag}"
                spec = {
                    "query": f"chaos {tag}",
                    "deadlineSeconds": 120,
                    "providers": [
                        {
                            "name": "job",
                            "url": env.site.url(f"{tag}-job", **{"async": 3, "retryafter": 1}),
                        },
                        {
                            "name": "flaky",
                            "url": env.site.url(f"{tag}-flaky", fail=1, retryafter=1),
                        },
                        {"name": "page", "url": env.site.url(f"{tag}-page", delay=0.05)},
                    ],
                }
                custom.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    env.namespace,
                    SEARCH_PLURAL,
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "Search",
                        "metadata": {"name": name},
                        "spec": spec,
                    },
                )
                names.append(name)
            time.sleep(rng.uniform(0.1, 1.5))
            env.operator.kill()
            env.operator.start()
            print(
                f"cycle {cycle + 1}/{args.cycles}: killed and restarted",
                file=sys.stderr,
                flush=True,
            )

        deadline = time.monotonic() + 180
        phases: dict[str, str] = {}
        while time.monotonic() < deadline:
            listed = custom.list_namespaced_custom_object(
                GROUP, VERSION, env.namespace, SEARCH_PLURAL
            )
            phases = {
                i["metadata"]["name"]: (i.get("status") or {}).get("phase", "Pending")
                for i in listed["items"]
            }
            if all(phases.get(n) in ("Completed", "Failed", "Terminated") for n in names):
                break
            time.sleep(0.5)
        stats = env.site.stats()

    hits = stats["hits"]
    repeated = {
        kind: sum(max(0, hits.get(f"{name[2:]}-{kind}", 0) - expected) for name in names)
        for kind, expected in EXPECTED_FIRST_REQUESTS.items()
    }
    missing = {
        kind: sum(1 for name in names if hits.get(f"{name[2:]}-{kind}", 0) < expected)
        for kind, expected in EXPECTED_FIRST_REQUESTS.items()
    }
    report = {
        "cycles": args.cycles,
        "searches": len(names),
        "completed": sum(1 for n in names if phases.get(n) == "Completed"),
        "other_phases": {n: p for n, p in phases.items() if p != "Completed"},
        "first_requests_repeated": repeated,
        "providers_with_fewer_requests_than_expected": missing,
        "polls_total": sum(stats["polls"].values()),
    }
    emit(report, args.out)
    return 0 if report["completed"] == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
