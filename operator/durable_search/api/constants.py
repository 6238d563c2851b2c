"""Names every other layer agrees on: the API group, kinds, labels, phases, outcomes, reasons."""

from __future__ import annotations

from enum import StrEnum

GROUP = "durablesearch.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

SEARCH_KIND, SEARCH_PLURAL = "Search", "searches"
HTTPTASK_KIND, HTTPTASK_PLURAL = "HttpTask", "httptasks"
PROVIDER_KIND, PROVIDER_PLURAL = "SearchProvider", "searchproviders"

# Labels on HttpTasks a Search fans out. The Search's uid (not its name, which may exceed a
# label value's 63 characters) ties children to their parent for list calls.
LABEL_SEARCH_UID = f"{GROUP}/search-uid"
LABEL_SEARCH_NAME = f"{GROUP}/search"
LABEL_PROVIDER = f"{GROUP}/provider"
LABEL_ROLE = f"{GROUP}/role"
ROLE_FANOUT = "fanout"
# On a child made from a SearchProvider object (not an inline provider): that provider's name,
# so its spec.rateLimit paces the child (see controller.pacing).
ANNOTATION_SEARCH_PROVIDER = f"{GROUP}/search-provider"
ROLE_WATCHER = "watcher"

NO_RESULTS_HTML = "<h1>No Results</h1>"
RESULT_SEPARATOR = "<hr/>"


class SearchPhase(StrEnum):
    """Durable Functions' runtime status names."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    TERMINATED = "Terminated"

    @property
    def finished(self) -> bool:
        return self in (SearchPhase.COMPLETED, SearchPhase.FAILED, SearchPhase.TERMINATED)


class TaskPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    POLLING = "Polling"
    SUCCEEDED = "Succeeded"  # a final HTTP answer arrived, whatever its code
    FAILED = "Failed"  # no final HTTP answer: transport error, deadline, blocked
    TERMINATED = "Terminated"

    @property
    def finished(self) -> bool:
        return self in (TaskPhase.SUCCEEDED, TaskPhase.FAILED, TaskPhase.TERMINATED)


class Outcome(StrEnum):
    SUCCEEDED = "Succeeded"  # successCondition held (by default: the final answer was 200)
    HTTP_ERROR = "HttpError"  # any other final answer, when no successCondition is given
    CONDITION_NOT_MET = "ConditionNotMet"  # a final answer; the successCondition given is false
    TRANSPORT_ERROR = "TransportError"
    TIMED_OUT = "TimedOut"
    BLOCKED = "Blocked"
    PROVIDER_NOT_FOUND = "ProviderNotFound"
    TERMINATED = "Terminated"
    INVALID = "Invalid"  # the fault is on our side of the wire; the condition's reason says which


class Reason(StrEnum):
    """CamelCase reasons for conditions and Events (an outcome is its own reason otherwise)."""

    RUNNING = "Running"
    COMPLETED = "Completed"
    NO_PROVIDERS = "NoProviders"
    TERMINATED = "Terminated"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    RETRYING = "Retrying"
    POLLING = "Polling"
    # Why an outcome is Invalid:
    INVALID_REQUEST = "InvalidRequest"  # the request cannot be sent as written
    INVALID_EXPRESSION = "InvalidExpression"  # a CEL expression of the spec does not compile
    TOO_LARGE_TO_RECORD = "TooLargeToRecord"  # the API server refused the status recording it
    NAME_CONFLICT = "NameConflict"  # a child's name is taken by an object we do not own
    INTERNAL = "Internal"  # our own code kept failing on this object


CONDITION_SUCCEEDED = "Succeeded"
