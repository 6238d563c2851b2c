"""Every exception Durable Search raises on purpose, in one tree.

Callers decide on the class, never on a message or a flag::

    DurableSearchError
     ├── ExchangeError              no usable HTTP answer for this exchange: becomes an outcome
     │    ├── TransportError        connection refused or reset, DNS, a protocol error (retried)
     │    │    └── ExchangeTimeoutError  no answer within the attempt's timeout (retried)
     │    ├── BlockedError          the SSRF guard or a policy refused it (never retried)
     │    └── InvalidRequestError   the request cannot be sent as written (never retried):
     │                              a URL or header the HTTP client refuses, a missing Secret
     ├── KubeApiError               a Kubernetes API call failed in a way callers decide on
     │    ├── ConflictError         409: the object changed since it was read; re-read, decide
     │    ├── NotFoundError         404: the object does not exist
     │    ├── RefusedError          400/413/422: the API server will never accept this write
     │    ├── ApiError              any other answer (401, 403, 429, 5xx), with its ``status``
     │    ├── CrdsMissingError      the API server does not serve our kinds
     │    └── KubeconfigError       no usable kubeconfig or in-cluster account (the message says
     │         │                    why: a missing file, context, or plugin, an auth-provider)
     │         └── NotInClusterError  no ServiceAccount mounted here (then a kubeconfig is read)
     ├── AdmissionParamsError       the admission policies' parameter is unusable (api.admission)
     ├── OperatorConflictError      another operator runs over the same namespaces in another
     │                              mode (standalone beside a ring, or two rings): not started
     ├── ControlPlaneError          the local control plane could not be built or started
     │    └── BuildError            (durable_search.cluster; development tooling)
     ├── UsageError                 a CLI command's arguments are wrong: exit 2
     ├── CommandError               a CLI command cannot be done (no such Search, already
     │                              finished): exit 1
     └── ForwardedError             a forwarded header the web service was about to honour is
                                    malformed: a 400 (``durable_search_web.forwarded``, where
                                    it is defined: the web's own vocabulary)

Elsewhere, at their layer's edge: ``engine.cel.InvalidExpression`` / ``EvaluationError`` (a
user's CEL; both become outcomes) and the web service's ``ProblemError`` (an HTTP answer).

``ExchangeError`` messages never carry a secret: they name the Secret, key or token source.
"""

from __future__ import annotations


class DurableSearchError(Exception):
    """The root: ``except DurableSearchError`` catches every error raised on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ExchangeError(DurableSearchError):
    """No usable HTTP answer for this exchange; the engine records it as an outcome."""


class TransportError(ExchangeError):
    """The exchange failed on the wire or on the far side; another attempt may succeed."""


class ExchangeTimeoutError(TransportError):
    """No answer within the attempt's timeout."""


class BlockedError(ExchangeError):
    """Refused before sending: a forbidden address, or a credential a policy withholds."""


class InvalidRequestError(ExchangeError):
    """The fault is on our side of the wire: the request cannot be sent as written."""


class KubeApiError(DurableSearchError):
    """A Kubernetes API call failed in a way callers decide on."""


class ConflictError(KubeApiError):
    """The object changed since it was read (HTTP 409): re-read it and decide again."""


class NotFoundError(KubeApiError):
    """The object does not exist (HTTP 404)."""


class RefusedError(KubeApiError):
    """The API server refused the write itself (400, 413, 422): sending it again cannot help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ApiError(KubeApiError):
    """Any other refusal (401, 403, 429, 5xx): ``status`` and the server's message."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class CrdsMissingError(KubeApiError):
    """Durable Search's kinds are not served by this API server."""


class KubeconfigError(KubeApiError):
    """The kubeconfig or the in-cluster account cannot be used; the message says why."""


class NotInClusterError(KubeconfigError):
    """No ServiceAccount token mounted, or no ``KUBERNETES_SERVICE_HOST``."""


class AdmissionParamsError(DurableSearchError, ValueError):
    """The parameter ConfigMap lacks a key or exceeds a bound; the message says which."""


class OperatorConflictError(DurableSearchError):
    """A rival operator (another mode, or another ring) stayed live over the same namespaces."""


class ControlPlaneError(DurableSearchError, RuntimeError):
    """The local control plane could not be started; the message carries the failing log's tail."""


class BuildError(ControlPlaneError):
    """A step of the control plane build failed; the message names the step and the log."""


class UsageError(DurableSearchError):
    """A command's arguments are wrong: the CLI prints the message and exits 2."""


class CommandError(DurableSearchError):
    """The command cannot be done (not found, already finished, refused): the CLI exits 1."""
