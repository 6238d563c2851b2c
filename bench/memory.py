"""Operator and web service memory (RSS) with many finished and many active Searches.

    .venv/bin/python -m bench.memory --finished 10000 --active 1000

First ``--finished`` Searches over 3 providers (50 ms pages) run to completion, ``--concurrency``
at a time; then ``--active`` Searches whose one provider never answers stay in flight. RSS is
read from /proc after each phase, for both processes, and again after a restart of each (what
a fresh process needs to hold the same objects).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from bench.environment import environment
from bench.longpoll import rss_mib
from bench.orchestration import CompletionWatcher, run_one
from bench.report import emit
from durable_search.api.constants import GROUP, SEARCH_PLURAL, VERSION
from tests.support.processes import WebProcess


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--finished", type=int, default=10000)
    parser.add_argument("--active", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {"finished": args.finished, "active": args.active}

    with environment(namespace="memory") as env:
        web = WebProcess(
            env.plane.kubeconfig,
            env.plane.state_dir / "web.log",
            env.namespace,
            log_level="warning",
        ).start()
        try:
            assert env.operator.process is not None and web.process is not None
            report["rss_idle_mib"] = {
                "operator": rss_mib(env.operator.process.pid),
                "web": rss_mib(web.process.pid),
            }
            watcher = CompletionWatcher(env)
            began = time.monotonic()
            with ThreadPoolExecutor(args.concurrency) as pool:
                for done, _ in enumerate(
                    pool.map(lambda _: run_one(env, watcher, 3, 0.05), range(args.finished)), 1
                ):
                    if done % 1000 == 0:
                        print(
                            f"{done} finished ({done / (time.monotonic() - began):.1f}/s)",
                            file=sys.stderr,
                            flush=True,
                        )
            watcher.stop()
            report["rss_with_finished_mib"] = {
                "operator": rss_mib(env.operator.process.pid),
                "web": rss_mib(web.process.pid),
            }
            custom = client.CustomObjectsApi(env.api)
            stuck = env.site.url("memory-stuck", hang=1)
            for _ in range(args.active):
                custom.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    env.namespace,
                    SEARCH_PLURAL,
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "Search",
                        "metadata": {"name": f"a-{uuid.uuid4().hex[:10]}"},
                        "spec": {
                            "query": "active",
                            "deadlineSeconds": 3600,
                            "providers": [{"name": "stuck", "url": stuck}],
                        },
                    },
                )
            time.sleep(20)  # every active Search fanned out, its request queued or in flight
            report["rss_with_finished_and_active_mib"] = {
                "operator": rss_mib(env.operator.process.pid),
                "web": rss_mib(web.process.pid),
            }
            env.operator.stop()
            env.operator.start(timeout=120)
            web.stop()
            web.start(timeout=120)
            time.sleep(20)
            report["rss_after_restart_mib"] = {
                "operator": rss_mib(env.operator.process.pid),
                "web": rss_mib(web.process.pid),
            }
        finally:
            web.stop()
    report["note"] = "RSS from /proc/<pid>/status; 3 providers per finished Search"
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
