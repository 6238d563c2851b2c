"""crds/ is generated from api/schema.py and must not drift; the schema keeps its promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from durable_search.api.schema import all_crds, render

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_crds_directory_matches_the_generator() -> None:
    expected = {name: render(document) for name, document in all_crds().items()}
    actual = {path.name: path.read_text() for path in CRDS.glob("*.yaml")}
    assert actual == expected, "crds/ is stale: run `make crds`"


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, child in (schema.get("properties") or {}).items():
        found += _walk(child, f"{path}.{name}")
    if "items" in schema:
        found += _walk(schema["items"], f"{path}[]")
    return found


def test_every_field_is_described_and_every_string_and_list_is_bounded() -> None:
    for document in all_crds().values():
        root = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for section in ("spec", "status"):
            if section not in root["properties"]:
                continue
            for path, schema in _walk(root["properties"][section], section):
                if not path.endswith("[]"):
                    assert schema.get("description"), f"{path} has no description"
                if schema.get("type") == "string" and "enum" not in schema:
                    assert "maxLength" in schema, f"{path} is an unbounded string"
                if schema.get("type") == "array":
                    assert "maxItems" in schema, f"{path} is an unbounded list"


def test_search_printer_columns_are_the_contracts() -> None:
    search = all_crds()["searches.yaml"]
    columns = [c["name"] for c in search["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["Query", "Phase", "Progress", "Age", "Duration"]
    assert yaml.safe_load(render(search)) == search
