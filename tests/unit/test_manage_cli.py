"""The management commands' argument parsing and table (pure parts of commands.manage)."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from durable_search.api.constants import SearchPhase
from durable_search.commands import manage
from durable_search.engine.management import PurgeFilter
from durable_search.errors import UsageError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("90s", dt.timedelta(seconds=90)),
        ("30m", dt.timedelta(minutes=30)),
        ("2h", dt.timedelta(hours=2)),
        ("7d", dt.timedelta(days=7)),
        ("1h30m", dt.timedelta(hours=1, minutes=30)),
        ("0s", dt.timedelta(0)),
    ],
)
def test_durations_read_as_written(raw: str, expected: dt.timedelta) -> None:
    assert manage.parse_duration(raw) == expected


@pytest.mark.parametrize("raw", ["", "soon", "5", "1 h", "-1h", "1h1d", "²s", "1.5h"])
def test_anything_else_is_a_usage_error(raw: str) -> None:
    with pytest.raises(UsageError, match="not a duration"):
        manage.parse_duration(raw)


def test_statuses_are_case_insensitive_and_unknown_ones_named() -> None:
    assert manage.parse_statuses(None) is None
    assert manage.parse_statuses("completed, Failed") == {SearchPhase.COMPLETED, SearchPhase.FAILED}
    with pytest.raises(UsageError, match="unknown status 'Done'"):
        manage.parse_statuses("Completed,Done")


MOMENT = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def purge_args(*argv: str) -> argparse.Namespace:
    """``durable-search purge ARGV...`` as the CLI's own parser reads it."""
    parser = argparse.ArgumentParser()
    manage.add_parser(parser.add_subparsers())
    return parser.parse_args(["purge", *argv])


def test_purge_older_than_selects_searches_created_before_now_minus_the_duration() -> None:
    selection = manage.purge_filter(purge_args("--older-than", "1h"), MOMENT)
    assert selection == PurgeFilter(created_to=MOMENT - dt.timedelta(hours=1))


def test_purge_status_selects_the_named_finished_phases() -> None:
    selection = manage.purge_filter(purge_args("--status", "failed, Terminated"), MOMENT)
    assert selection == PurgeFilter(
        statuses=frozenset({SearchPhase.FAILED, SearchPhase.TERMINATED})
    )


def test_purge_status_and_older_than_together_set_both_filters() -> None:
    args = purge_args("--status", "Completed", "--older-than", "7d")
    assert manage.purge_filter(args, MOMENT) == PurgeFilter(
        statuses=frozenset({SearchPhase.COMPLETED}), created_to=MOMENT - dt.timedelta(days=7)
    )


def test_purge_without_a_filter_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="purge needs a filter: --status, --older-than, or both"):
        manage.purge_filter(purge_args(), MOMENT)


def test_purge_refuses_unfinished_phases_and_names_them() -> None:
    # Sorted: the same message whatever order the set of phases iterates in.
    with pytest.raises(UsageError, match=r"^Pending, Running Searches are never purged$"):
        manage.purge_filter(purge_args("--status", "Running,Completed,Pending"), MOMENT)


def test_the_table_has_kubectls_columns_and_cuts_long_queries() -> None:
    moment = dt.datetime(2026, 1, 1, 12, 0, 10, tzinfo=dt.UTC)
    table = manage.search_table(
        [
            {
                "metadata": {"name": "s-1", "creationTimestamp": "2026-01-01T12:00:00Z"},
                "spec": {"query": "x" * 60},
                "status": {"phase": "Completed", "progress": "2/2", "duration": "1.2s"},
            }
        ],
        moment,
    )
    header, row = table.splitlines()
    assert header.split() == ["NAME", "QUERY", "PHASE", "PROGRESS", "AGE", "DURATION"]
    assert row.split() == ["s-1", "x" * 39 + "…", "Completed", "2/2", "10.0s", "1.2s"]
