"""Verify Gateway's identity assertion in an upstream written in Python (needs PyJWT[crypto]).

Gateway sends, on every request it forwards or lets through with a verified token, a JWT in
the X-Gateway-Assertion header (``identity_assertion`` in routes.yaml). Check it instead of
trusting X-Auth-Subject: then a request that reached the app without passing Gateway (a
misrouted ingress, a pod reaching the Service directly) carries no identity at all.

    GATEWAY_URL     how the app reaches Gateway, for its keys   (http://gateway:8080)
    GATEWAY_ISSUER  Gateway's tokens.issuer                      (GATEWAY_URL)
    GATEWAY_ROUTE   the name of the route in front of this app   (required)

    from verify_assertion import verify_assertion
    claims = verify_assertion(request.headers["X-Gateway-Assertion"])  # raises if not valid
    user, scopes = claims["sub"], claims["scope"].split()

Or from a shell: ``python verify_assertion.py <assertion>`` prints the claims, or the reason.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import jwt

GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://gateway:8080").rstrip("/")
ISSUER = os.environ.get("GATEWAY_ISSUER", GATEWAY_URL)
ROUTE = os.environ.get("GATEWAY_ROUTE", "")
ASSERTION_TYPE = "gateway-identity+jwt"

# Keys are fetched once and kept for five minutes; an unknown kid (Gateway rotated its key)
# fetches the set again.
_keys = jwt.PyJWKClient(f"{GATEWAY_URL}/.well-known/jwks.json", lifespan=300)


def verify_assertion(value: str, route: str = ROUTE, leeway: float = 5.0) -> dict[str, Any]:
    """The assertion's claims; ``jwt.InvalidTokenError`` (or ``PyJWKClientError``) if not valid."""
    if not route:
        raise ValueError("set GATEWAY_ROUTE (or pass route=) to the name of this app's route")
    if jwt.get_unverified_header(value).get("typ") != ASSERTION_TYPE:
        # An access token is signed by the same keys: the type keeps one from passing as the other.
        raise jwt.InvalidTokenError("not a Gateway identity assertion")
    key = _keys.get_signing_key_from_jwt(value)
    claims: dict[str, Any] = jwt.decode(
        value,
        key,
        algorithms=[key.algorithm_name],  # the key's own algorithm, never the token's choice
        audience=route,  # an assertion made for another route is refused
        issuer=ISSUER,
        leeway=leeway,
        options={"require": ["iss", "aud", "sub", "iat", "exp"]},
    )
    return claims


if __name__ == "__main__":
    try:
        print(verify_assertion(sys.argv[1]))
    except (IndexError, ValueError, jwt.PyJWTError) as error:
        print(f"not valid: {error or type(error).__name__}", file=sys.stderr)
        sys.exit(1)
