"""Why an endpoint call failed, as one line the user can act on (exit code 1).

The messages name the endpoint (config name and URL) and, for auth problems, the environment
variable to check. They never contain the API key: `redact` scrubs it from server-supplied text,
since some servers echo the presented key back in their 401 message.
"""

from __future__ import annotations

import re

from ..errors import RunFailed

_KEYLIKE = re.compile(r"\b(?:sk|key|pk|rk)-[A-Za-z0-9_\-\*\.]{4,}")


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def redact(text: str, secret: str | None = None) -> str:
    """Remove the secret and anything shaped like an API key from `text`."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)


class EndpointError(RunFailed):
    """Base of the endpoint errors; `endpoint` is the config name."""

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(one_line(message, 500))
        self.endpoint = endpoint
        self.status = status


class EndpointAuthError(EndpointError):
    """401/403: the key is missing, wrong or not allowed. Not retried: it will not get better."""


class EndpointRequestError(EndpointError):
    """The server rejected this request (400/404/422...). Not retried: it would fail again."""


class EndpointUnavailable(EndpointError):
    """Transient failures (429, 5xx, timeouts, broken bodies) outlasted every retry."""


class EndpointMisconfigured(EndpointError):
    """The endpoint's settings point somewhere wrong (it answered with a redirect). A
    configuration problem: `models check` and a pre-flight check report it with exit code 2;
    during a run it stops the run (exit 1) with this one line."""


class EndpointProtocolError(EndpointError):
    """The server broke the protocol in a way a retry would not fix: a body over the size cap,
    a batch output that names requests we never sent. Not retried."""
