"""``durable-search cluster up|down|status|build``: the local control plane from a terminal."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

DEFAULT_STATE_DIR = Path(".local/cluster")
DEFAULT_KUBECONFIG = Path(".local/kubeconfig")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cluster", help="the local control plane (etcd, kube-apiserver, kube-controller-manager)"
    )
    parser.add_argument("action", choices=["up", "down", "status", "build"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--kubeconfig-out", type=Path, default=DEFAULT_KUBECONFIG)
    parser.add_argument(
        "--foreground",
        action="store_true",
        help="with `up`: stay attached and stop the control plane on Ctrl-C",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the control plane's tools (cryptography) are development dependencies,
    # not needed by an installed operator or web service.
    from durable_search.cluster.build import ensure_binaries
    from durable_search.cluster.controlplane import ControlPlane
    from durable_search.errors import BuildError, ControlPlaneError

    plane = ControlPlane(args.state_dir.resolve(), args.kubeconfig_out.resolve())
    try:
        if args.action == "build":
            binaries = ensure_binaries()
            for path in binaries.all:
                print(path)
            return 0
        if args.action == "down":
            plane.stop()
            print("control plane stopped")
            return 0
        if args.action == "status":
            state = plane.state()
            if state is None or not plane.is_running():
                print("control plane: not running")
                return 1
            print(f"control plane: running at {state.server} (pids {state.pids})")
            return 0
        state = plane.start()
    except (BuildError, ControlPlaneError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"control plane is up: {state.server}")
    print(f"logs: {plane.logs_dir}/")
    print(f"export KUBECONFIG={plane.kubeconfig}")
    if not args.foreground:
        print("stop it with: make cluster-down")
        return 0
    print("Ctrl-C stops it.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(2.0):
            if not plane.is_running():
                print(
                    "error: the control plane stopped unexpectedly; see the logs", file=sys.stderr
                )
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        plane.stop()
        print("control plane stopped")
    return 0
