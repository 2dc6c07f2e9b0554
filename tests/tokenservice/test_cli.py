"""`gateway users add`, `gateway token mint`, `gateway sessions revoke` (docs/behaviour.md#command-line)."""

from __future__ import annotations

import io
from pathlib import Path

import jwt
import pytest
import yaml
from argon2 import PasswordHasher

from gateway.cli import main
from gateway.tokenservice import commands
from tests.conftest import free_port
from tests.tokenservice.conftest import SECRETS, Service, call, config_text

NEW_PASSWORD = "a-brand-new-password"
SECRETS.add(NEW_PASSWORD)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(config_text(9))
    return path


def run(args: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(args)


def users_of(config: Path) -> dict[str, dict[str, object]]:
    return dict(yaml.safe_load((config.parent / "users.yaml").read_text())["users"])


def test_users_add_writes_an_argon2id_hash_to_a_private_file(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["users", "add", "zoe", "--scopes", "orders:read,orders:write", "--password-stdin"]
    code = run([*args, "--config", str(config)], monkeypatch, NEW_PASSWORD + "\n")
    assert code == 0
    assert capsys.readouterr().out.startswith("added user zoe in ")
    zoe = users_of(config)["zoe"]
    assert str(zoe["password_hash"]).startswith("$argon2id$")
    assert PasswordHasher().verify(str(zoe["password_hash"]), NEW_PASSWORD)
    assert zoe["scopes"] == ["orders:read", "orders:write"]
    assert (config.parent / "users.yaml").stat().st_mode & 0o777 == 0o600


def test_users_add_keeps_the_other_users_and_an_updated_users_claims(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (config.parent / "users.yaml").write_text(
        yaml.safe_dump(
            {
                "users": {
                    "amy": {"password_hash": "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"},
                    "zoe": {"password_hash": "x", "scopes": ["a"], "claims": {"tenant": "t1"}},
                }
            }
        )
    )
    args = ["users", "add", "zoe", "--password-stdin", "--config", str(config)]
    assert run(args, monkeypatch, NEW_PASSWORD + "\n") == 0
    users = users_of(config)
    assert set(users) == {"amy", "zoe"}
    assert users["zoe"]["claims"] == {"tenant": "t1"} and users["zoe"]["scopes"] == ["a"]
    assert str(users["zoe"]["password_hash"]).startswith("$argon2id$")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        pytest.param(["zoe", "--password-stdin"], "\n", "the password is empty", id="empty"),
        pytest.param(
            ["bad name", "--password-stdin"], "pw-pw-pw\n", "no spaces", id="bad username"
        ),
        pytest.param(
            ["zoe", "--scopes", "a b", "--password-stdin"],
            "pw-pw-pw\n",
            "is not a scope",
            id="bad scope",
        ),
    ],
)
def test_users_add_refuses_bad_input_in_one_line(
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    stdin: str,
    message: str,
) -> None:
    assert run(["users", "add", *args, "--config", str(config)], monkeypatch, stdin) == 1
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_users_add_prompts_twice_and_refuses_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["first-typing-1", "second-typing-2"])
    monkeypatch.setattr(commands.getpass, "getpass", lambda prompt: next(answers))
    with pytest.raises(commands.CommandError, match="do not match"):
        commands.read_password(from_stdin=False)


def test_users_add_is_refused_when_verify_url_manages_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(config_text(9, users={"verify_url": "http://127.0.0.1:9/verify"}))
    args = ["users", "add", "zoe", "--password-stdin", "--config", str(path)]
    assert run(args, monkeypatch, "pw-pw-pw\n") == 1
    assert "verify_url" in capsys.readouterr().err


def mint(service: Service, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["token", "mint", *extra, "--config", str(service.config_path)]) == 0
    token = capsys.readouterr().out.strip()
    SECRETS.add(token)
    return token


def test_token_mint_prints_a_token_the_gateway_accepts_with_the_users_scopes(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    token = mint(service, capsys, "--sub", "bob")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "bob" and claims["scope"] == "orders:read"
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert call(service.url, token).status_code == 200


def test_token_mint_takes_scopes_and_a_lifetime(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    token = mint(service, capsys, "--sub", "robot", "--scopes", "reports:read", "--ttl", "90s")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["scope"] == "reports:read" and claims["exp"] - claims["iat"] == 90
    assert call(service.url, token).status_code == 403  # the route wants orders:read


@pytest.mark.parametrize(
    "ttl", [pytest.param("soon", id="not a duration"), pytest.param("3d", id="too long")]
)
def test_token_mint_refuses_a_bad_ttl_in_one_line(
    service: Service, capsys: pytest.CaptureFixture[str], ttl: str
) -> None:
    args = ["token", "mint", "--sub", "bob", "--ttl", ttl, "--config", str(service.config_path)]
    assert main(args) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_sessions_revoke_with_the_store_down_prints_one_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(config_text(9, store=f"redis://127.0.0.1:{free_port()}/0"))
    assert main(["sessions", "revoke", "--sub", "alice", "--config", str(path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("gateway: cannot revoke sessions:") and error.count("\n") == 1
    assert "Traceback" not in error
