"""The ``gateway`` command line (docs/behaviour.md#command-line).

Errors in use print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.config import Config, ConfigError, config_warnings, load_config, missing_inputs


class UsageError(Exception):
    """A problem the user can fix; printed as one line."""


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("GATEWAY_CONFIG") or "routes.yaml")


def _load(args: argparse.Namespace) -> Config:
    return load_config(_config_path(args))


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args)
    missing = missing_inputs(config)
    if missing:
        print("\n".join(missing), file=sys.stderr)
        return 1
    for warning in config_warnings(config):
        print(warning, file=sys.stderr)
    print(
        f"{config.source}: OK, {len(config.routes)} routes, "
        f"{len(config.trusted_issuers)} trusted issuers, "
        f"{len(config.login.providers)} sign-in providers, store {config.store.split('://')[0]}"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.ops.supervisor import serve

    path = _config_path(args)
    config = load_config(path)  # refuse a broken file before any worker starts
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    from gateway.auth.jwks import JwksError
    from gateway.auth.keys import KeyFileError, ensure_key
    from gateway.ops.inputs import read_inputs

    try:  # the only place a key is ever created: before workers exist, on an empty folder
        ensure_key(config.tokens.keys, config.tokens.algorithm)
        inputs = read_inputs(path)
    except (KeyFileError, JwksError, OSError) as exc:
        raise UsageError(str(exc)) from None
    return serve(
        inputs,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_format=args.log_format,
    )


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from gateway.auth.keys import generate_key

    config = _load(args)
    kid = generate_key(config.tokens.keys, config.tokens.algorithm)
    print(f"new signing key {kid} in {config.tokens.keys}")
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    from gateway.tokenservice.commands import read_password, users_add

    config = _load(args)
    password = read_password(from_stdin=args.password_stdin)
    print(users_add(config, args.name, scopes=args.scopes, password=password))
    return 0


def cmd_token_mint(args: argparse.Namespace) -> int:
    from gateway.tokenservice.commands import mint_token

    print(mint_token(_load(args), args.sub, scopes=args.scopes, ttl=args.ttl))
    return 0


def cmd_sessions_revoke(args: argparse.Namespace) -> int:
    from gateway.tokenservice.commands import revoke_sessions

    print(revoke_sessions(_load(args), args.sub))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from gateway.auth.jwks import JwksError
    from gateway.auth.keys import KeyFileError
    from gateway.ops.explain import explain

    config = _load(args)
    try:
        lines = asyncio.run(explain(config, args.method, args.path, args.token, now=time.time()))
    except (KeyFileError, JwksError) as exc:
        raise UsageError(str(exc)) from None
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", help="routes.yaml path (default: $GATEWAY_CONFIG or ./routes.yaml)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common], help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="access log format on stdout (text is for a human at a terminal)",
    )
    serve.set_defaults(run=cmd_serve)

    check = commands.add_parser("check", parents=[common], help="validate the configuration")
    check.set_defaults(run=cmd_check)

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    generate = keys.add_parser("generate", parents=[common], help="create a new signing key")
    generate.set_defaults(run=cmd_keys_generate)

    users = commands.add_parser("users", help="the users file").add_subparsers(
        dest="users_command", required=True
    )
    add = users.add_parser("add", parents=[common], help="add or update a user")
    add.add_argument("name")
    add.add_argument("--scopes", help="comma-separated scopes, e.g. orders:read,orders:write")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.set_defaults(run=cmd_users_add)

    token = commands.add_parser("token", help="access tokens").add_subparsers(
        dest="token_command", required=True
    )
    mint = token.add_parser("mint", parents=[common], help="print a signed access token")
    mint.add_argument("--sub", required=True, help="the token's subject")
    mint.add_argument("--scopes", help="comma-separated scopes (default: the user's, if listed)")
    mint.add_argument("--ttl", help="lifetime such as 5m (default: tokens.access_ttl)")
    mint.set_defaults(run=cmd_token_mint)

    sessions = commands.add_parser("sessions", help="login sessions").add_subparsers(
        dest="sessions_command", required=True
    )
    revoke = sessions.add_parser(
        "revoke", parents=[common], help="revoke every session of a user (log out everywhere)"
    )
    revoke.add_argument("--sub", required=True, help="the user whose sessions end")
    revoke.set_defaults(run=cmd_sessions_revoke)
    explain = commands.add_parser(
        "explain",
        parents=[common],
        help="which route a request takes, and whether its token passes",
    )
    explain.add_argument("method")
    explain.add_argument("path", help="the request path, optionally with ?query")
    explain.add_argument("--token", help="an access token to check against the route")
    explain.set_defaults(run=cmd_explain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # The token-service commands' own one-line errors; imported late so that `check`
        # and `serve` do not load argon2 and the stores just to report a problem.
        from gateway.tokenservice.commands import CommandError

        if not isinstance(exc, CommandError):
            raise
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
