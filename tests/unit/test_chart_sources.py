"""The chart ships crds/ verbatim: the CRDs have one source."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_charts_crds_are_a_copy_of_crds() -> None:
    source = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_text() for p in (REPO / "charts/durable-search/crds").glob("*.yaml")}
    assert chart == source, "charts/durable-search/crds is stale: run `make crds`"


def test_every_value_is_documented_with_a_comment_or_a_self_explaining_name() -> None:
    values = (REPO / "charts/durable-search/values.yaml").read_text()
    assert values.startswith("# Default values for durable-search.")
    keys = ("clusterWide", "allowCidrs", "allowHosts", "auth", "maxConnectionsPerHost")
    keys += ("apiAudiences", "dnsCidrs", "apiServerCidrs", "hard")
    for key in keys:
        line_index = next(i for i, line in enumerate(values.splitlines()) if f"{key}:" in line)
        assert values.splitlines()[line_index - 1].lstrip().startswith("#"), key
