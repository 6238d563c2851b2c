"""The admission parameter's text format: the operator reads it as the policies' CEL does."""

from __future__ import annotations

import pytest

from durable_search.api.admission import (
    MAX_PARAM_ENTRIES,
    MAX_PARAM_ENTRY_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    PARAM_API_AUDIENCES,
    PARAM_OPERATOR_USERS,
    AdmissionParams,
    AdmissionParamsError,
    format_list,
    params_data,
    parse_list,
    parse_params,
    service_account_user,
)


def test_entries_are_comma_separated_trimmed_and_empty_ones_ignored() -> None:
    assert parse_list("k", " a, b ,,c,\n d ,") == frozenset({"a", "b", "c", "d"})
    assert parse_list("k", "") == frozenset()
    assert parse_list("k", " , ") == frozenset()


def test_parse_params_gives_both_sets_and_unpacks_as_a_pair() -> None:
    users, audiences = parse_params(
        {
            PARAM_OPERATOR_USERS: "system:serviceaccount:ds:op",
            PARAM_API_AUDIENCES: "https://a,https://b",
        }
    )
    assert users == frozenset({"system:serviceaccount:ds:op"})
    assert audiences == frozenset({"https://a", "https://b"})


def test_an_empty_list_is_allowed_but_a_missing_key_is_refused() -> None:
    empty = parse_params({PARAM_OPERATOR_USERS: "", PARAM_API_AUDIENCES: ""})
    assert empty == AdmissionParams(frozenset(), frozenset())
    with pytest.raises(AdmissionParamsError, match="lacks apiAudiences"):
        parse_params({PARAM_OPERATOR_USERS: "x"})
    with pytest.raises(AdmissionParamsError, match="lacks operatorUsers and apiAudiences"):
        parse_params(None)


def test_the_bounds_are_enforced_with_messages_that_say_which() -> None:
    too_many = ",".join(f"u{i}" for i in range(MAX_PARAM_ENTRIES + 1))
    with pytest.raises(AdmissionParamsError, match=f"{MAX_PARAM_ENTRIES + 1} entries"):
        parse_list(PARAM_OPERATOR_USERS, too_many)
    with pytest.raises(AdmissionParamsError, match="an entry of"):
        parse_list(PARAM_API_AUDIENCES, "x" * (MAX_PARAM_ENTRY_LENGTH + 1))
    with pytest.raises(AdmissionParamsError, match="characters long"):
        parse_list(PARAM_API_AUDIENCES, "," * (MAX_PARAM_VALUE_LENGTH + 1))
    assert len(parse_list("k", ",".join(f"u{i}" for i in range(MAX_PARAM_ENTRIES)))) == 64


def test_written_data_reads_back_the_same() -> None:
    data = params_data(["b", "a", "a"], ["https://kubernetes.default.svc"])
    assert data == {
        PARAM_OPERATOR_USERS: "a,b",
        PARAM_API_AUDIENCES: "https://kubernetes.default.svc",
    }
    assert parse_params(data) == AdmissionParams(
        frozenset({"a", "b"}), frozenset({"https://kubernetes.default.svc"})
    )


@pytest.mark.parametrize("item", ["a,b", " a", "", "b\n"])
def test_an_entry_the_format_cannot_carry_is_refused_on_writing(item: str) -> None:
    with pytest.raises(AdmissionParamsError, match="comma-separated"):
        format_list([item])


def test_service_account_user_names() -> None:
    assert service_account_user("ds", "op") == "system:serviceaccount:ds:op"
