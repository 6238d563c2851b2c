"""The three CustomResourceDefinitions, generated from one description of their schemas.

``crds/*.yaml`` are written from here (``make crds``) and a unit test fails when they drift, so
the sub-schemas HttpTask, Search and SearchProvider share (headers, retry, response) are written
once. Every field has a description (``kubectl explain``), every string and list a bound (CEL
cost), and the defaults come from ``api.models``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from durable_search.api import models
from durable_search.api.constants import (
    GROUP,
    HTTPTASK_KIND,
    HTTPTASK_PLURAL,
    PROVIDER_KIND,
    PROVIDER_PLURAL,
    SEARCH_KIND,
    SEARCH_PLURAL,
    VERSION,
    Outcome,
    SearchPhase,
    TaskPhase,
)

Schema = dict[str, Any]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
# Visible ASCII and tab: no CR/LF (header injection), nothing an HTTP client must refuse.
HEADER_VALUE = r"^[\t -~]*$"
# scheme://host[:port] then the rest: a registered name or a bracketed IPv6 literal, no
# user:password@ (put credentials in a header from a Secret), one optional port.
URL_AUTHORITY = (
    r"^https?://(\[[0-9A-Fa-f:.]+\]|[-A-Za-z0-9._~%!$&'()*+,;=]+)(:[0-9]{1,5})?([/?#]\S*)?$"
)
MAX_URL = 2048
# 512 KiB of raw bytes is ~683 KiB as base64: far below the API's 1.5 MiB object limit.
MAX_BODY_BYTES = 524288
MAX_STORED_BODY_CHARS = 700000
EXPRESSION_MAX = 1024  # engine.cel.EXPRESSION_MAX (api may not import the engine)
OUTPUT_VALUE_MAX = 1024  # engine.cel.OUTPUT_MAX
# An output's name: an identifier or a DNS label (hits, total_count, first-title).
OUTPUT_NAME = r"^[A-Za-z_][-A-Za-z0-9_]*$"
CEL_VARIABLES = (
    "response.statusCode (int), response.headers (map of lower-case names to strings), "
    "response.body (the body as read, Secrets redacted) and response.json (the parsed body "
    "when it is complete JSON, else null)"
)


# -- building blocks ------------------------------------------------------------------------


def string(description: str, max_length: int, **extra: Any) -> Schema:
    return {"type": "string", "description": description, "maxLength": max_length, **extra}


def integer(description: str, minimum: int, maximum: int, **extra: Any) -> Schema:
    return {
        "type": "integer",
        "description": description,
        "minimum": minimum,
        "maximum": maximum,
        **extra,
    }


def number(description: str, minimum: float, maximum: float, **extra: Any) -> Schema:
    return {
        "type": "number",
        "description": description,
        "minimum": minimum,
        "maximum": maximum,
        **extra,
    }


def boolean(description: str, **extra: Any) -> Schema:
    return {"type": "boolean", "description": description, **extra}


def array(description: str, items: Schema, max_items: int, **extra: Any) -> Schema:
    return {
        "type": "array",
        "description": description,
        "items": items,
        "maxItems": max_items,
        **extra,
    }


def obj(
    description: str,
    properties: dict[str, Schema],
    required: tuple[str, ...] = (),
    rules: tuple[tuple[str, str], ...] = (),
    **extra: Any,
) -> Schema:
    schema: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = list(required)
    if rules:
        schema["x-kubernetes-validations"] = [{"rule": r, "message": m} for r, m in rules]
    schema.update(extra)
    return schema


def timestamp(description: str) -> Schema:
    return string(description, 64, format="date-time")


def one_way_terminate(description: str) -> Schema:
    """One-way, checked by the same policy (``self || !oldSelf`` would run on status writes)."""
    return boolean(description, default=False)


# -- shared sub-schemas ---------------------------------------------------------------------


def secret_key_ref(description: str) -> Schema:
    return obj(
        description,
        {
            "name": string("Name of a Secret in the object's namespace.", 253, minLength=1),
            "key": string("Key within the Secret's data.", 253, minLength=1),
        },
        required=("name", "key"),
    )


def headers_schema() -> Schema:
    header = obj(
        "A request header: a literal value, or one read from a Secret at send time.",
        {
            "name": string("Header name (an HTTP token).", 256, minLength=1, pattern=HEADER_NAME),
            "value": string(
                "Literal value (visible ASCII and tabs). Stored in the object: use valueFrom "
                "for secrets.",
                8192,
                pattern=HEADER_VALUE,
            ),
            "valueFrom": obj(
                "Where to read the value from. Secret values are resolved when the request is "
                "sent, sent only to the original request's origin, and never written to status, "
                "Events or logs.",
                {"secretKeyRef": secret_key_ref("The Secret key holding the value.")},
                required=("secretKeyRef",),
            ),
        },
        required=("name",),
        rules=(
            ("has(self.value) != has(self.valueFrom)", "give exactly one of value or valueFrom"),
        ),
    )
    return array("Request headers.", header, 32)


def config_map_key_ref(description: str) -> Schema:
    return obj(
        description,
        {
            "name": string("Name of a ConfigMap in the object's namespace.", 253, minLength=1),
            "key": string("Key within the ConfigMap's data or binaryData.", 253, minLength=1),
        },
        required=("name", "key"),
    )


# Standard base64 with padding, no line breaks: what ``base64.b64decode(validate=True)`` takes.
BASE64 = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
DNS_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$"
MAX_BODY_CHARS = 65536


def body_properties() -> dict[str, Schema]:
    """``body``, ``bodyEncoding``, ``bodyFrom``: a request's body, literal or read at send time."""
    return {
        "body": string(
            "Request body: text, or base64 of the bytes to send with bodyEncoding: base64.",
            MAX_BODY_CHARS,
        ),
        "bodyEncoding": string(
            "How body is written: text (sent as UTF-8) or base64 (decoded, the bytes sent "
            "as they are; standard alphabet, padded, no line breaks).",
            8,
            enum=list(models.BODY_ENCODINGS),
            default="text",
        ),
        "bodyFrom": obj(
            "Where to read the body from when the request is sent, instead of body: a Secret "
            "key (its bytes as stored) or a ConfigMap key (data as UTF-8, or binaryData). "
            "Never written to status, Events or logs; redacted from an answer that echoes it; "
            "never sent across a redirect to another origin.",
            {
                "secretKeyRef": secret_key_ref("The Secret key holding the body."),
                "configMapKeyRef": config_map_key_ref("The ConfigMap key holding the body."),
            },
            rules=(
                (
                    "has(self.secretKeyRef) != has(self.configMapKeyRef)",
                    "give exactly one of secretKeyRef or configMapKeyRef",
                ),
            ),
        ),
    }


def body_rules() -> tuple[tuple[str, str], ...]:
    """The rules tying body, bodyEncoding and bodyFrom together (on the object holding them)."""
    return (
        ("!has(self.body) || !has(self.bodyFrom)", "give at most one of body or bodyFrom"),
        (
            "!has(self.bodyEncoding) || self.bodyEncoding != 'base64' || !has(self.bodyFrom)",
            "bodyEncoding: base64 applies to body; bodyFrom is sent as stored",
        ),
        (
            "!has(self.bodyEncoding) || self.bodyEncoding != 'base64' || !has(self.body) || "
            f"self.body.matches({_cel_string(BASE64)})",
            "body is not valid base64 (bodyEncoding: base64: the standard alphabet, padded, "
            "no line breaks)",
        ),
    )


def tls_schema() -> Schema:
    return obj(
        "TLS settings for https URLs (redirect hops and polls included).",
        {
            "caBundleFrom": obj(
                "PEM certificates trusted instead of the system roots.",
                {"configMapKeyRef": config_map_key_ref("The ConfigMap key holding the PEM.")},
                required=("configMapKeyRef",),
            ),
            "clientCertificateFrom": obj(
                "A client certificate for mutual TLS: a kubernetes.io/tls Secret (tls.crt, "
                "tls.key), read when the request is sent.",
                {
                    "secretName": string(
                        "Name of a kubernetes.io/tls Secret in the object's namespace.",
                        253,
                        minLength=1,
                    )
                },
                required=("secretName",),
            ),
            "serverName": string(
                "The name sent as SNI and verified in the server's certificate, instead of "
                "the URL's host.",
                253,
                minLength=1,
                pattern=DNS_NAME,
            ),
        },
    )


def rate_limit_schema() -> Schema:
    return obj(
        "A token bucket shared by every request made from this provider (all Searches and "
        "their HttpTasks, retries and polls included): at most burst at once, then "
        "requestsPerSecond. A wait for it is not an attempt, and the task's deadline still "
        "applies.",
        {
            "requestsPerSecond": number("Sustained requests per second.", 0.001, 10000),
            "burst": integer("Requests allowed at once.", 1, 10000, default=1),
        },
        required=("requestsPerSecond",),
    )


def retry_schema() -> Schema:
    d = models.RetryPolicy()
    return obj(
        "When and how often a failed attempt is retried.",
        {
            "maxAttempts": integer(
                "Attempts in all, the first included.", 1, 10, default=d.max_attempts
            ),
            "initialIntervalSeconds": number(
                "Wait before the second attempt (fractions allowed).",
                0,
                3600,
                default=d.initial_interval_seconds,
            ),
            "backoffCoefficient": number(
                "Each wait is the previous one times this.", 1, 10, default=d.backoff_coefficient
            ),
            "maxIntervalSeconds": number(
                "Cap on any wait between attempts, Retry-After included.",
                0,
                3600,
                default=d.max_interval_seconds,
            ),
            "onStatusCodes": array(
                "Answers that are retried. Retry-After is honoured on 429 and 503.",
                {"type": "integer", "minimum": 100, "maximum": 599},
                20,
                default=list(d.on_status_codes),
            ),
            "onTransportErrors": boolean(
                "Retry connection errors and attempt timeouts.", default=d.on_transport_errors
            ),
        },
        default={},
    )


def response_schema() -> Schema:
    d = models.ResponsePolicy()
    return obj(
        "What is kept of the response.",
        {
            "maxBodyBytes": integer(
                "Bytes of body kept; the rest is dropped and truncated is set. UTF-8 text is cut "
                "on a character boundary, other bytes are stored as base64.",
                0,
                MAX_BODY_BYTES,
                default=d.max_body_bytes,
            ),
            "keepHeaders": array(
                "Response headers kept in status (lower case). Set-Cookie and Authorization "
                "are never kept.",
                string("A header name.", 256),
                32,
                default=list(d.keep_headers),
            ),
        },
        default={},
    )


def url_schema(description: str, templated: bool) -> Schema:
    rules = [
        (
            "self.startsWith('http://') || self.startsWith('https://')",
            "must be an http:// or https:// URL",
        ),
        (
            f"isURL(self) && self.matches({_cel_string(URL_AUTHORITY)})",
            "must be a URL the operator can send: scheme://host[:port]/..., one port, no "
            "user:password@, no spaces",
        ),
        (
            "!isURL(self) || url(self).getPort() == '' || "
            "(int(url(self).getPort()) >= 1 && int(url(self).getPort()) <= 65535)",
            "the port must be from 1 to 65535",
        ),
    ]
    if templated:
        rules.append(("self.contains('{query}')", "must contain {query}"))
    return string(
        description,
        MAX_URL,
        minLength=8,
        **{"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]},
    )


def _cel_string(text: str) -> str:
    """``text`` as a CEL raw string literal, so regex backslashes stay as written."""
    assert '"' not in text
    return f'r"{text}"'


def method_schema() -> Schema:
    return string("HTTP method.", 8, enum=list(models.METHODS), default="GET")


def conditions_schema() -> Schema:
    condition = obj(
        "A condition, as in the Kubernetes API conventions.",
        {
            "type": string("Condition type (Succeeded).", 64),
            "status": string("True, False or Unknown.", 16, enum=["True", "False", "Unknown"]),
            "reason": string("CamelCase reason.", 128),
            "message": string("Human-readable details.", 1024),
            "lastTransitionTime": timestamp("When status last changed."),
        },
        required=("type", "status"),
    )
    return array(
        "Conditions.",
        condition,
        8,
        **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


def outcome_schema(description: str) -> Schema:
    return string(description, 32, enum=[o.value for o in Outcome])


def expression(description: str) -> Schema:
    return string(
        f"{description} CEL over {CEL_VARIABLES}; at most {EXPRESSION_MAX} characters, "
        "comprehension macros nested at most one level. Checked before the first request: "
        "one that does not compile ends the task Invalid (reason InvalidExpression).",
        EXPRESSION_MAX,
        minLength=1,
    )


def success_condition_schema() -> Schema:
    return expression(
        "When the final answer counts as a success (outcome Succeeded). False, or an "
        "evaluation error (named in the message), is outcome ConditionNotMet: phase Succeeded, "
        "not retried, shown as No Results. Without it: a final 200 is Succeeded and any other "
        "answer HttpError (the sample's rule, response.statusCode == 200)."
    )


def outputs_schema() -> Schema:
    output = obj(
        "A named value computed from the final answer.",
        {
            "name": string(
                "The key in status.outputs: a letter or underscore, then letters, digits, "
                "'_' or '-'.",
                63,
                minLength=1,
                pattern=OUTPUT_NAME,
            ),
            "expression": expression(
                "The value: a CEL string as it is, anything else as compact JSON, at most "
                f"{OUTPUT_VALUE_MAX} characters (longer values are cut, ending ' …'); "
                "4 KiB for all outputs together (later ones are cut, then left out, and named "
                "in the message). An evaluation error leaves the output out and names it in "
                "the message."
            ),
        },
        required=("name", "expression"),
    )
    return array(
        "Values computed from the final answer into status.outputs (and a Search's results).",
        output,
        16,
        **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


def async_schema() -> Schema:
    d = models.AsyncPolicy()
    return obj(
        "Durable's 202 pattern: a 202 with a status URL (the first of locationHeaders "
        "present) is followed by GETs of that URL, waiting Retry-After (clamped to the "
        "interval bounds), until a non-202 answer. With completeWhen, a 2xx answer it calls "
        "false is polled too (a 200-with-status monitor).",
        {
            "enabled": boolean("Follow 202 + a status URL.", default=d.enabled),
            "minPollIntervalSeconds": number(
                "Shortest wait between polls.",
                0,
                3600,
                default=d.min_poll_interval_seconds,
            ),
            "maxPollIntervalSeconds": number(
                "Longest wait between polls.",
                0,
                86400,
                default=d.max_poll_interval_seconds,
            ),
            "maxPolls": integer(
                "Polls before giving up (outcome TimedOut).",
                1,
                10000,
                default=d.max_polls,
            ),
            "locationHeaders": array(
                "Response headers naming the status URL, in order: the first one present "
                "wins (e.g. Operation-Location, Azure-AsyncOperation, Location). Matched "
                "without regard to case.",
                string("A header name.", 256, minLength=1, pattern=HEADER_NAME),
                8,
                default=["Location"],
            ),
            "completeWhen": expression(
                "Whether a 2xx answer (to the request or to a poll) is the operation's end: "
                "false, or an evaluation error, means still running, and the task polls again "
                "the last status URL (the one this answer names, else the one polled, else "
                "the request's own URL for a GET; a request that is not a GET and names none "
                "ends ConditionNotMet). A 202 with a status URL is polled without asking it."
            ),
        },
        rules=(
            (
                "!has(self.minPollIntervalSeconds) || "
                "!has(self.maxPollIntervalSeconds) || "
                "self.minPollIntervalSeconds <= self.maxPollIntervalSeconds",
                "minPollIntervalSeconds must not exceed maxPollIntervalSeconds",
            ),
        ),
        default={},
    )


def outputs_status_schema(description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        "maxProperties": 16,
        "additionalProperties": string("A value.", OUTPUT_VALUE_MAX),
    }


def provider_properties() -> dict[str, Schema]:
    return {
        "url": url_schema(
            "The site's search URL; {query} is replaced by the query, percent-encoded as UTF-8 "
            "with nothing left unescaped.",
            templated=True,
        ),
        "method": method_schema(),
        "headers": headers_schema(),
        "attemptTimeoutSeconds": integer("Per-attempt timeout for requests to this site.", 1, 3600),
        "retry": retry_schema(),
        "response": response_schema(),
        "successCondition": success_condition_schema(),
        "outputs": outputs_schema(),
        "async": async_schema(),
        **body_properties(),
        "tls": tls_schema(),
    }


# -- the kinds ------------------------------------------------------------------------------


def httptask_spec() -> Schema:
    auth = obj(
        "A token source (the Kubernetes analogue of a managed identity). The token is obtained "
        "when the request is sent, cached until shortly before it expires, sent as a bearer "
        "token to the original request's origin only, and never stored in the object.",
        {
            "serviceAccountToken": obj(
                "A TokenRequest for a ServiceAccount of this namespace.",
                {
                    "serviceAccountName": string("The ServiceAccount.", 253, minLength=1),
                    "audience": string("The token's audience.", 1024, minLength=1),
                    "expirationSeconds": integer("Requested lifetime.", 600, 86400, default=600),
                },
                required=("serviceAccountName", "audience"),
            ),
            "oauth2ClientCredentials": obj(
                "An OAuth 2.0 client-credentials grant.",
                {
                    "tokenUrl": url_schema("The token endpoint.", templated=False),
                    "clientId": obj(
                        "Where the client id is.",
                        {"secretKeyRef": secret_key_ref("The Secret key with the client id.")},
                        required=("secretKeyRef",),
                    ),
                    "clientSecret": obj(
                        "Where the client secret is.",
                        {"secretKeyRef": secret_key_ref("The Secret key with the client secret.")},
                        required=("secretKeyRef",),
                    ),
                    "scopes": array("Scopes to request.", string("A scope.", 256), 16),
                },
                required=("tokenUrl", "clientId", "clientSecret"),
            ),
        },
        rules=(
            (
                "has(self.serviceAccountToken) != has(self.oauth2ClientCredentials)",
                "give exactly one of serviceAccountToken or oauth2ClientCredentials",
            ),
        ),
    )
    request = obj(
        "The HTTP request.",
        {
            "method": method_schema(),
            "url": url_schema("The URL to call.", templated=False),
            "headers": headers_schema(),
            "auth": auth,
            **body_properties(),
            "tls": tls_schema(),
        },
        required=("url",),
        rules=body_rules(),
    )
    return obj(
        "A durable HTTP call: retries, 202 polling, deadlines, bounded bodies. The spec is "
        "immutable except terminate.",
        {
            "request": request,
            "deadlineSeconds": integer(
                "Deadline for the whole task (first call, polls and retries) from creation.",
                1,
                86400,
                default=120,
            ),
            "attemptTimeoutSeconds": integer(
                "Timeout of each attempt or poll, redirects and body included.",
                1,
                3600,
                default=30,
            ),
            "retry": retry_schema(),
            "async": async_schema(),
            "redirects": obj(
                "Redirect handling.",
                {"max": integer("Redirects followed per request (0: none).", 0, 20, default=5)},
                default={},
            ),
            "response": response_schema(),
            "terminate": one_way_terminate("Set to true to stop the task; it cannot be undone."),
            "successCondition": success_condition_schema(),
            "outputs": outputs_schema(),
        },
        required=("request",),
    )


def httptask_status() -> Schema:
    log_entry = obj(
        "One attempt or poll.",
        {
            "attempt": integer("Attempt number.", 0, 1000),
            "poll": integer("Poll number, for polls.", 0, 100000),
            "startTime": timestamp("When it started."),
            "durationMs": integer("How long it took.", 0, 86400000),
            "statusCode": integer("The HTTP status, when there was an answer.", 100, 599),
            "error": string("The transport error, when there was no answer.", 512),
        },
    )
    header = obj(
        "A kept response header.", {"name": string("Name.", 256), "value": string("Value.", 8192)}
    )
    return obj(
        "What the operator has done, recorded before anything else reads it.",
        {
            "phase": string(
                "Pending, Running, Polling, Succeeded (a final HTTP answer arrived, "
                "whatever its code), Failed (none did) or Terminated.",
                16,
                enum=[p.value for p in TaskPhase],
            ),
            "outcome": outcome_schema(
                "Succeeded when successCondition held (by default: a final 200)."
            ),
            "message": string("What happened last, for humans.", 1024),
            "outputs": outputs_status_schema(
                "spec.outputs evaluated over the final answer: name to value (strings)."
            ),
            "attempts": integer("Attempts claimed so far.", 0, 1000),
            "attemptLog": array("The last 10 attempts and polls.", log_entry, 10),
            "response": obj(
                "The latest HTTP answer (never overwritten by a later error).",
                {
                    "statusCode": integer("HTTP status.", 100, 599),
                    "headers": array("Kept headers.", header, 32),
                    "body": string("The body: UTF-8 text, or base64.", MAX_STORED_BODY_CHARS),
                    "bodyBytes": integer("Bytes the server sent (as far as known).", 0, 2**53),
                    "truncated": boolean("True when the body was cut at maxBodyBytes."),
                    "encoding": string("utf-8 or base64.", 8, enum=["utf-8", "base64"]),
                    "contentEncoding": string(
                        "The Content-Encoding the body is kept in, undecoded: one we did not "
                        "offer, or a second layer (only one layer of gzip or deflate is decoded).",
                        64,
                    ),
                },
            ),
            "location": string("The 202 Location being polled.", 8192),
            "pollCount": integer("Polls claimed so far.", 0, 100000),
            "nextPollTime": timestamp("When the claimed poll is due."),
            "nextAttemptTime": timestamp("When the claimed attempt is due."),
            "lastError": string("The latest transport error.", 1024),
            "startTime": timestamp("When the first request started."),
            "completionTime": timestamp("When the task finished."),
            "observedGeneration": integer("The generation last acted on.", 0, 2**53),
            "conditions": conditions_schema(),
            "claim": obj(
                "In an operator ring: the member that may send the next request.",
                {
                    "holder": string(
                        "The member's identity; empty when released for another to take over.",
                        253,
                    )
                },
            ),
        },
    )


def search_spec() -> Schema:
    provider = obj(
        "An inline search site.",
        {
            "name": string("Provider name (a DNS-1123 label).", 63, minLength=1, pattern=DNS_LABEL),
            **provider_properties(),
        },
        required=("name", "url"),
        rules=body_rules(),
    )
    d = models.SearchSpec(query="")
    return obj(
        "A search: one query fanned out to several providers. The spec is immutable except "
        "terminate (false to true).",
        {
            "query": string("The query, 1 to 512 characters.", 512, minLength=1),
            "providers": array(
                "Inline sites.",
                provider,
                16,
                **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
            ),
            "providerRefs": array(
                "Names of SearchProviders in this namespace. Neither providers nor "
                "providerRefs: every SearchProvider of the namespace.",
                string("A SearchProvider name.", 63, minLength=1, pattern=DNS_LABEL),
                16,
                **{"x-kubernetes-list-type": "set"},
            ),
            "deadlineSeconds": integer(
                "Deadline of the whole orchestration.", 1, 86400, default=int(d.deadline_seconds)
            ),
            "overrides": obj(
                "Per-search tightening of every provider's settings (never loosening).",
                {
                    "attemptTimeoutSeconds": integer("Per-attempt timeout cap.", 1, 3600),
                    "maxAttempts": integer("Attempts cap.", 1, 10),
                },
            ),
            "terminate": one_way_terminate(
                "Set to true to stop the search and its in-flight requests; cannot be undone."
            ),
            "terminateReason": string(
                "Why the search was terminated: shown in its Succeeded condition's message. "
                "Only together with terminate: true.",
                256,
            ),
            "ttlSecondsAfterFinished": integer(
                "Delete the Search (and its HttpTasks) this long after it finishes.", 0, 2592000
            ),
        },
        required=("query",),
        rules=(
            (
                "!has(self.terminateReason) || (has(self.terminate) && self.terminate)",
                "terminateReason is only allowed together with terminate: true",
            ),
        ),
    )


def search_status() -> Schema:
    result = obj(
        "One provider's outcome.",
        {
            "name": string("Provider name.", 63),
            "httpTaskName": string("The HttpTask fetching it.", 253),
            "outcome": outcome_schema(
                "Absent while running. Succeeded when the provider's successCondition held "
                "(by default: a final 200); a failing provider never fails the search."
            ),
            "statusCode": integer("The final HTTP status, when there was one.", 100, 599),
            "attempts": integer("Attempts made.", 0, 1000),
            "durationMs": integer("From the first request to the outcome.", 0, 2**31),
            "message": string("Details.", 1024),
            "outputs": outputs_status_schema("The HttpTask's status.outputs."),
        },
        required=("name",),
    )
    return obj(
        "The orchestration's progress and outcome.",
        {
            "phase": string("Durable runtime status.", 16, enum=[p.value for p in SearchPhase]),
            "progress": string("Finished providers / providers.", 16),
            "duration": string("Start to finish, when finished.", 32),
            "startTime": timestamp("When the fan-out started."),
            "completionTime": timestamp("When it finished."),
            "observedGeneration": integer("The generation last acted on.", 0, 2**53),
            "results": array("One entry per provider, in a stable order.", result, 32),
            "conditions": conditions_schema(),
        },
    )


def provider_spec() -> Schema:
    return obj(
        "A search site Searches can refer to; its fields are defaults for the HttpTasks "
        "made from it.",
        {**provider_properties(), "rateLimit": rate_limit_schema()},
        required=("url",),
        rules=body_rules(),
    )


def documented_defaults(schema: Any) -> Any:
    """``schema`` with every ``default`` moved into its description (``Default: 3.``).

    The operator applies the same defaults when it reads a spec (``api.models``), so the API
    server need not: defaulting on every read and write made each write of our kinds about
    60% dearer than a schema-less one (``bench/compare.py``), and stored objects larger.
    """
    if isinstance(schema, list):
        return [documented_defaults(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: documented_defaults(v) for k, v in schema.items() if k != "default"}
    if "default" in schema and schema["default"] not in ({}, [], None):
        value = schema["default"]
        text = ", ".join(map(str, value)) if isinstance(value, list) else json.dumps(value)
        out["description"] = f"{schema.get('description', '').rstrip()} Default: {text}.".strip()
    return out


def crd(
    kind: str,
    plural: str,
    short: str,
    spec: Schema,
    status: Schema | None,
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    properties: dict[str, Schema] = {"spec": documented_defaults(spec)}
    if status is not None:
        properties["status"] = status
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "description": description,
                "required": ["spec"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    **properties,
                },
            }
        },
        "additionalPrinterColumns": columns,
    }
    if status is not None:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["durablesearch"],
            },
            "versions": [version],
        },
    }


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


AGE = _column("Age", ".metadata.creationTimestamp", "date")


def all_crds() -> dict[str, dict[str, Any]]:
    """File name to CRD."""
    return {
        "searches.yaml": crd(
            SEARCH_KIND,
            SEARCH_PLURAL,
            "srch",
            search_spec(),
            search_status(),
            [
                _column("Query", ".spec.query"),
                _column("Phase", ".status.phase"),
                _column("Progress", ".status.progress"),
                AGE,
                _column("Duration", ".status.duration"),
            ],
            "A search orchestration: fans a query out to providers as HttpTasks and fans the "
            "results back in.",
        ),
        "httptasks.yaml": crd(
            HTTPTASK_KIND,
            HTTPTASK_PLURAL,
            "ht",
            httptask_spec(),
            httptask_status(),
            [
                _column("Phase", ".status.phase"),
                _column("Outcome", ".status.outcome"),
                _column("Code", ".status.response.statusCode", "integer"),
                _column("Attempts", ".status.attempts", "integer"),
                AGE,
                _column("URL", ".spec.request.url", priority=1),
            ],
            "A durable HTTP call, executed by the Durable Search operator.",
        ),
        "searchproviders.yaml": crd(
            PROVIDER_KIND,
            PROVIDER_PLURAL,
            "sp",
            provider_spec(),
            None,
            [_column("URL", ".spec.url"), AGE],
            "A search site that Searches in this namespace can use.",
        ),
    }


HEADER = "# Generated by `make crds` from operator/durable_search/api/schema.py: do not edit.\n"


def render(document: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in all_crds().items():
        path = directory / name
        path.write_text(render(document))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "crds")):
        print(path)
