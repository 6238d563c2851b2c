"""Builds etcd, kube-apiserver and kube-controller-manager from the Go module proxy.

``go install k8s.io/kubernetes/cmd/...`` is refused because k8s.io/kubernetes replaces its staging
modules with local paths, so the wrapper modules under ``hack/controlplane/`` (committed, small,
reviewable) map each staging module to its published release and are built from there. Binaries
are cached outside the repository, one directory per version, and written atomically: a second
run builds nothing, and an interrupted build never leaves a half-written binary in the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from durable_search.errors import BuildError

KUBERNETES_VERSION = "1.33.13"
ETCD_VERSION = "3.5.35"

# A cold build needs the module cache (~1.5 GiB) and the build cache (~4 GiB) plus room to link.
_MIN_FREE_BYTES = 8 * 1024**3


def cache_root() -> Path:
    override = os.environ.get("DURABLE_SEARCH_CACHE")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "durable-search"


@dataclass(frozen=True)
class Binaries:
    """Where the cached control plane binaries live."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path

    @property
    def all(self) -> tuple[Path, ...]:
        return (self.etcd, self.kube_apiserver, self.kube_controller_manager)

    def missing(self) -> list[Path]:
        return [path for path in self.all if not os.access(path, os.X_OK)]


def cached_binaries(root: Path | None = None) -> Binaries:
    base = root or cache_root()
    kube = base / f"kubernetes-v{KUBERNETES_VERSION}"
    return Binaries(
        etcd=base / f"etcd-v{ETCD_VERSION}" / "etcd",
        kube_apiserver=kube / "kube-apiserver",
        kube_controller_manager=kube / "kube-controller-manager",
    )


def find_wrapper_modules(start: Path | None = None) -> Path:
    """The ``hack/controlplane`` directory of the source checkout this code runs from."""
    candidates = [start] if start else [Path.cwd(), Path(__file__).resolve()]
    for origin in candidates:
        for directory in (origin, *origin.parents):
            wrapper = directory / "hack" / "controlplane"
            if (wrapper / "kubernetes" / "go.mod").is_file():
                return wrapper
    raise BuildError(
        "cannot find hack/controlplane/: building the control plane needs a source checkout "
        "of durable-search (run it from the repository root)"
    )


def version_ldflags(version: str) -> str:
    """Linker flags that make the binaries report the real version instead of v0.0.0-master."""
    major, minor, _patch = version.split(".")
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion=v{version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


def ensure_binaries(root: Path | None = None, *, log: Path | None = None) -> Binaries:
    """Return the cached binaries, building whatever is missing first."""
    binaries = cached_binaries(root)
    if not binaries.missing():
        return binaries
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain is needed to build the control plane: `go` not on PATH")
    wrapper = find_wrapper_modules()
    log_path = log or (cache_root() / "logs" / f"build-{time.strftime('%Y%m%d-%H%M%S')}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _check_free_disk(binaries.etcd.parent.parent)

    if not os.access(binaries.etcd, os.X_OK):
        _go_build(
            step=f"etcd v{ETCD_VERSION}",
            module_dir=wrapper / "etcd",
            packages=["go.etcd.io/etcd/server/v3"],
            outputs={"server": binaries.etcd},
            ldflags="-s -w",
            log_path=log_path,
        )
    if not os.access(binaries.kube_apiserver, os.X_OK) or not os.access(
        binaries.kube_controller_manager, os.X_OK
    ):
        _go_build(
            step=f"kube-apiserver and kube-controller-manager v{KUBERNETES_VERSION}",
            module_dir=wrapper / "kubernetes",
            packages=[
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
            ],
            outputs={
                "kube-apiserver": binaries.kube_apiserver,
                "kube-controller-manager": binaries.kube_controller_manager,
            },
            ldflags=version_ldflags(KUBERNETES_VERSION),
            log_path=log_path,
        )
    return binaries


def _check_free_disk(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < _MIN_FREE_BYTES:
        raise BuildError(
            f"only {free / 1024**3:.1f} GiB free under {directory}; the control plane build needs "
            f"about {_MIN_FREE_BYTES / 1024**3:.0f} GiB (Go module and build caches). Free some "
            "disk or point DURABLE_SEARCH_CACHE / GOCACHE / GOMODCACHE elsewhere."
        )


def _go_build(
    *,
    step: str,
    module_dir: Path,
    packages: Sequence[str],
    outputs: dict[str, Path],
    ldflags: str,
    log_path: Path,
) -> None:
    """``go build`` into a temporary directory, then move each output into the cache."""
    target_dir = next(iter(outputs.values())).parent
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir, prefix=".build-") as scratch:
        command = [
            "go",
            "build",
            "-trimpath",
            "-ldflags",
            ldflags,
            "-o",
            scratch + "/",
            *packages,
        ]
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
        _progress(
            f"building {step} (a cold build takes about 5 minutes on 2 cores); log: {log_path}"
        )
        started = time.monotonic()
        with log_path.open("a") as log_file:
            log_file.write(f"$ (cd {module_dir} && {' '.join(command)})\n")
            log_file.flush()
            process = subprocess.Popen(
                command, cwd=module_dir, env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
            heartbeat = _Heartbeat(step, started)
            heartbeat.start()
            try:
                code = process.wait()
            finally:
                heartbeat.stop()
            elapsed = time.monotonic() - started
            log_file.write(f"# {step}: exit {code} after {elapsed:.0f}s\n")
        if code != 0:
            tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-25:])
            raise BuildError(f"building {step} failed (exit {code}); log: {log_path}\n{tail}")
        for name, destination in outputs.items():
            built = Path(scratch) / name
            if not built.is_file():
                raise BuildError(f"building {step}: go build produced no {name} (log: {log_path})")
            destination.parent.mkdir(parents=True, exist_ok=True)
            built.replace(destination)
        _progress(f"built {step} in {elapsed / 60:.1f} min")


def _progress(message: str) -> None:
    print(f"[control-plane] {message}", file=sys.stderr, flush=True)


class _Heartbeat:
    """Prints elapsed time while a silent ``go build`` runs, so a long build visibly progresses."""

    def __init__(self, step: str, started: float, every: float = 60.0) -> None:
        self._step = step
        self._started = started
        self._every = every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self._every):
            minutes = (time.monotonic() - self._started) / 60
            _progress(f"still building {self._step}: {minutes:.0f} min so far")
