"""Check a value against a CRD schema's bounds (types, maxLength, maxItems, enum, ranges).

For property tests: whatever a site sends, the status we write must be one the API server
accepts. This walks the generated schema, so a bound changed in ``api.schema`` is checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durable_search.api.schema import all_crds


def status_schema(crd_file: str) -> Mapping[str, Any]:
    version = all_crds()[crd_file]["spec"]["versions"][0]
    schema: Mapping[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    return schema


def violations(value: Any, schema: Mapping[str, Any], path: str = "status") -> list[str]:
    """Every way ``value`` breaks ``schema``'s bounds (empty when it fits)."""
    kind = schema.get("type")
    found: list[str] = []
    if kind == "object":
        if not isinstance(value, Mapping):
            return [f"{path}: not an object"]
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key not in properties:
                found.append(f"{path}.{key}: not in the schema (would be pruned)")
            else:
                found += violations(item, properties[key], f"{path}.{key}")
        return found
    if kind == "array":
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        if len(value) > schema.get("maxItems", len(value)):
            found.append(f"{path}: {len(value)} items > {schema['maxItems']}")
        for index, item in enumerate(value):
            found += violations(item, schema["items"], f"{path}[{index}]")
        return found
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: not a string"]
        if len(value) > schema.get("maxLength", len(value)):
            found.append(f"{path}: {len(value)} characters > {schema['maxLength']}")
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: not an integer"]
        if not schema.get("minimum", value) <= value <= schema.get("maximum", value):
            found.append(f"{path}: {value} out of range")
    elif kind == "boolean" and not isinstance(value, bool):
        found.append(f"{path}: not a boolean")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} not one of {schema['enum']}")
    return found
