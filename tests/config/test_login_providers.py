"""``login.providers``: validated at load with lines; ``gateway check`` questions literal secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, config_warnings, parse_config

SOURCE = Path("/x/routes.yaml")

PROVIDER = """routes: []
login:
  providers:
    - name: corp
      issuer: https://idp.example.com
      client_id: gateway
      client_secret: {secret}
"""


def test_a_provider_is_built_with_its_defaults() -> None:
    config = parse_config(PROVIDER.format(secret="${S}"), SOURCE, {"S": "x"})
    (provider,) = config.login.providers
    assert provider.scopes == ("openid", "profile", "email")
    assert provider.subject == "sub"
    assert provider.client_secret == "x"
    assert not config.login.password_form  # providers, and no users section


def test_a_secret_from_the_environment_gives_no_warning() -> None:
    config = parse_config(PROVIDER.format(secret="${S}"), SOURCE, {"S": "x"})
    assert config_warnings(config) == []


def test_a_secret_written_in_the_file_is_a_warning_with_its_line() -> None:
    config = parse_config(PROVIDER.format(secret="hunter2"), SOURCE, {})
    (warning,) = config_warnings(config)
    assert warning.startswith("/x/routes.yaml:4: warning:") and "client_secret" in warning
    assert "hunter2" not in warning


def test_check_prints_the_warning_and_passes(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(PROVIDER.format(secret="hunter2"))
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check", "--config", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0
    assert "warning" in done.stderr and "client_secret" in done.stderr
    assert "1 sign-in providers" in done.stdout


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("      bogus: 1\n", ":8: unknown key 'bogus'", id="unknown key"),
        pytest.param(
            "      scope_map: [a]\n", ":8: scope_map must be a mapping", id="bad scope_map"
        ),
    ],
)
def test_a_problem_is_reported_with_its_line(line: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(PROVIDER.format(secret="s") + line, SOURCE, {})
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_plain_http_issuer_is_refused_unless_loopback() -> None:
    text = PROVIDER.format(secret="s").replace("https://idp.example.com", "http://idp.example.com")
    with pytest.raises(ConfigError, match=":5: issuer: plain http"):
        parse_config(text, SOURCE, {})


def test_a_provider_name_must_be_a_url_segment() -> None:
    text = PROVIDER.format(secret="s").replace("name: corp", "name: Corp/x")
    with pytest.raises(ConfigError, match=":4: name:"):
        parse_config(text, SOURCE, {})
