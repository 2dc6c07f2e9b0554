"""Access tokens: finding them in a request, verifying them, and issuing the gateway's own.

extract.py      extract_token: the bearer token of a request (header or cookie, never query)
verifier.py     Verifier, IssuerPolicy, KeySource: claims or a Failure (docs/behaviour.md)
token_cache.py  the bounded verified-token cache used by the verifier
keys.py         KeyRing: the gateway's own signing keys (a directory of PEM files)
jwks.py         JwksSource: external issuers' key sets, fetched and cached by kid
issuer.py       TokenIssuer: mints at+jwt access tokens with the newest key
errors.py       Failure (every refusal reason), TokenError, InvalidRequest
"""

from gateway.auth.errors import Failure, InvalidRequest, TokenError
from gateway.auth.extract import extract_token
from gateway.auth.issuer import TokenIssuer
from gateway.auth.jwks import JwksError, JwksSource
from gateway.auth.keys import (
    KeyFileError,
    KeyRing,
    VerificationKey,
    ensure_key,
    generate_key,
)
from gateway.auth.verifier import IssuerPolicy, KeySource, Verifier, scopes_of

__all__ = [
    "Failure",
    "InvalidRequest",
    "IssuerPolicy",
    "JwksError",
    "JwksSource",
    "KeyFileError",
    "KeyRing",
    "KeySource",
    "TokenError",
    "TokenIssuer",
    "VerificationKey",
    "Verifier",
    "ensure_key",
    "extract_token",
    "generate_key",
    "scopes_of",
]
