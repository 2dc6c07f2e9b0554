"""Why a token or a request is refused, as data.

    Exception
    ├── TokenError      a bearer token that must not be accepted (401 invalid_token); .failure
    └── InvalidRequest  a request that carries its credentials ambiguously (400 invalid_request)

Every refusal has one ``Failure``; its ``label`` is stable (metrics, access log) and its
``description`` is a fixed sentence. Descriptions go into ``WWW-Authenticate`` and JSON bodies,
so they never quote anything taken from the token: an attacker-chosen ``iss`` or ``kid`` echoed
into a header would be a header-injection vector, and the token itself must never be logged.
"""

from __future__ import annotations

import enum

__all__ = ["Failure", "InvalidRequest", "TokenError"]


class Failure(enum.Enum):
    """Every reason a bearer token is refused; the value is the metric/log label."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    ISSUED_IN_FUTURE = "issued_in_future"
    WRONG_AUDIENCE = "wrong_audience"
    UNKNOWN_ISSUER = "unknown_issuer"
    UNKNOWN_KEY = "unknown_key"
    ALGORITHM_NOT_ALLOWED = "algorithm_not_allowed"
    LIFETIME_TOO_LONG = "lifetime_too_long"
    MISSING_CLAIM = "missing_claim"
    BAD_CLAIM_TYPE = "bad_claim_type"
    BAD_TYPE = "bad_type"
    CRIT_HEADER = "crit_header"
    BAD_HEADER_VALUE = "bad_header_value"
    REVOKED = "revoked"

    @property
    def label(self) -> str:
        """The stable short name used in metrics and logs."""
        return self.value

    @property
    def description(self) -> str:
        """A fixed human sentence, safe to send to the client."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: dict[Failure, str] = {
    Failure.MALFORMED: "The access token is malformed",
    Failure.BAD_SIGNATURE: "The access token signature is invalid",
    Failure.EXPIRED: "The access token expired",
    Failure.NOT_YET_VALID: "The access token is not valid yet",
    Failure.ISSUED_IN_FUTURE: "The access token is issued in the future",
    Failure.WRONG_AUDIENCE: "The access token is not meant for this audience",
    Failure.UNKNOWN_ISSUER: "The access token issuer is not trusted",
    Failure.UNKNOWN_KEY: "The access token signing key is unknown",
    Failure.ALGORITHM_NOT_ALLOWED: "The access token algorithm is not allowed",
    Failure.LIFETIME_TOO_LONG: "The access token lifetime is too long",
    Failure.MISSING_CLAIM: "The access token lacks a required claim",
    Failure.BAD_CLAIM_TYPE: "The access token has a claim of the wrong type",
    Failure.BAD_TYPE: "The access token has the wrong type (typ header)",
    Failure.CRIT_HEADER: "The access token has critical header parameters",
    Failure.BAD_HEADER_VALUE: "The access token has a claim that cannot be a header value",
    Failure.REVOKED: "The access token was revoked",
}


class TokenError(Exception):
    """A token that must not be accepted; ``description`` is safe to show the client."""

    def __init__(self, failure: Failure, detail: str | None = None) -> None:
        # ``detail`` is only ever a claim name from our own configuration or code, never a value
        # read from the token.
        self.failure = failure
        self.description = f"{failure.description}: {detail}" if detail else failure.description
        super().__init__(self.description)


class InvalidRequest(Exception):
    """A request whose credentials are ambiguous (answered with 400 invalid_request)."""

    def __init__(self, description: str) -> None:
        self.description = description
        super().__init__(description)
