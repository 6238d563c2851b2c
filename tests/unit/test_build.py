"""The control plane build's pure parts: version flags, cache layout, locating the wrappers."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable_search.cluster.build import (
    BuildError,
    cached_binaries,
    find_wrapper_modules,
    version_ldflags,
)


def test_ldflags_stamp_the_real_version_into_both_version_packages() -> None:
    flags = version_ldflags("1.33.13")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.33.13" in flags
        assert f"-X {package}.gitMajor=1" in flags
        assert f"-X {package}.gitMinor=33" in flags


def test_binaries_are_cached_per_version_outside_the_repository(tmp_path: Path) -> None:
    binaries = cached_binaries(tmp_path)
    assert binaries.kube_apiserver == tmp_path / "kubernetes-v1.33.13" / "kube-apiserver"
    assert binaries.etcd.parent.name.startswith("etcd-v3.5.")
    assert binaries.missing() == list(binaries.all)


def test_wrapper_modules_are_found_from_anywhere_inside_the_checkout() -> None:
    here = Path(__file__).resolve().parent
    assert (find_wrapper_modules(here) / "kubernetes" / "go.mod").is_file()


def test_outside_a_checkout_the_error_says_what_is_needed(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="source checkout"):
        find_wrapper_modules(tmp_path)
