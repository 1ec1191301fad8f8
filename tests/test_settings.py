"""Settings: defaults, every ``TRIONET_*`` variable, and how a bad value stops start-up."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from trionet.settings import ENV, Settings, SettingsError

BIN = Path(sys.executable).parent
PUBLIC_KEY = str(Path(__file__).parent / "data" / "ed25519-public.pem")

#: Every variable with a valid value and the field value it must produce.
VALID: dict[str, tuple[str, object]] = {
    "TRIONET_DATABASE": ("/var/lib/trionet/chat.db", "/var/lib/trionet/chat.db"),
    "TRIONET_HOST": ("0.0.0.0", "0.0.0.0"),
    "TRIONET_PORT": ("9001", 9001),
    "TRIONET_ALLOWED_ORIGINS": (
        "https://app.example.com, HTTP://Localhost:3000/",
        ("https://app.example.com", "http://localhost:3000"),
    ),
    "TRIONET_COOKIE_NAME": ("sid", "sid"),
    "TRIONET_SESSION_TTL": ("3600", 3600),
    "TRIONET_COOKIE_SECURE": ("true", True),
    "TRIONET_OPEN_REGISTRATION": ("off", False),
    "TRIONET_SEND_QUEUE": ("64", 64),
    "TRIONET_MAX_MESSAGE_BYTES": ("4096", 4096),
    "TRIONET_MAX_CONTENT_CHARS": ("500", 500),
    "TRIONET_RATE_LIMIT": ("2.5", 2.5),
    "TRIONET_API_KEY": ("k" * 32, "k" * 32),
    "TRIONET_JWT_SECRET": ("s" * 32, "s" * 32),  # with TRIONET_OPEN_REGISTRATION off
    "TRIONET_LOG_LEVEL": ("debug", "DEBUG"),
    "TRIONET_PING_INTERVAL": ("5", 5.0),
    "TRIONET_SHUTDOWN_TIMEOUT": ("3.5", 3.5),
    "TRIONET_COMMIT_TIMEOUT": ("0.25", 0.25),
    "TRIONET_TCP_USER_TIMEOUT": ("0", 0.0),
    "TRIONET_REPLAY_LIMIT": ("50", 50),
    "TRIONET_RETRY_BUFFER": ("20", 20),
    "TRIONET_PRESENCE_LIMIT": ("0", 0),
    "TRIONET_WORKER_ID": ("3", 3),
    "TRIONET_REDIS_URL": ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    "TRIONET_REDIS_PREFIX": ("chat-eu:1", "chat-eu:1"),
    "TRIONET_REDIS_LEASE": ("5", 5.0),
    "TRIONET_PROXY_HOPS": ("2", 2),
    "TRIONET_DB_SYNCHRONOUS": ("full", "FULL"),
    "TRIONET_REGISTER_RATE": ("0", 0.0),
    "TRIONET_INVITE_RATE": ("12.5", 12.5),
    "TRIONET_MAX_CONNECTIONS_PER_USER": ("0", 0),
    "TRIONET_MAX_CONNECTIONS_PER_ADDRESS": ("200", 200),
    "TRIONET_REPLAY_BYTES": ("65536", 65536),
    "TRIONET_NOTIFICATION_INBOX": ("50", 50),
    "TRIONET_RETENTION_DAYS": ("30.5", 30.5),
    "TRIONET_JWT_PUBLIC_KEY": (PUBLIC_KEY, PUBLIC_KEY),
    "TRIONET_JWKS_URL": ("https://backend.example/.well-known/jwks.json",
                         "https://backend.example/.well-known/jwks.json"),
    "TRIONET_JWT_AUDIENCE": ("chat", "chat"),
    "TRIONET_WEBHOOK_URL": ("https://backend.example/hooks", "https://backend.example/hooks"),
    "TRIONET_WEBHOOK_SECRET": ("a-webhook-secret-123", "a-webhook-secret-123"),
    "TRIONET_CORS_ORIGINS": ("https://App.example, http://web.example:8080/",
                             ("https://app.example", "http://web.example:8080")),
    "TRIONET_JWT_ISSUER": ("https://backend.example", "https://backend.example"),
    "TRIONET_BODY_TIMEOUT": ("2.5", 2.5),
    "TRIONET_PASSWORD_HASHERS": ("4", 4),
}


def test_defaults_run_one_process_on_an_embedded_database() -> None:
    settings = Settings.from_env(environ={})
    assert settings == Settings()
    assert settings.database == "./trionet.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.allowed_origins == ()
    assert settings.cookie_name == "trionet_session"
    assert settings.session_ttl == 14 * 24 * 3600
    assert settings.cookie_secure is False
    assert settings.open_registration is None and settings.registration_open is True
    assert settings.send_queue == 256
    assert settings.max_message_bytes == 64 * 1024
    assert settings.max_content_chars == 16_000
    assert settings.api_key is None
    assert settings.jwt_secret is None
    assert settings.log_level == "INFO"


def test_every_setting_has_a_trionet_variable() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert set(ENV) == fields
    assert {variable for variable, _parse, _doc in ENV.values()} == set(VALID)


def test_every_variable_is_parsed() -> None:
    settings = Settings.from_env(environ={name: raw for name, (raw, _) in VALID.items()})
    by_variable = {variable: field for field, (variable, _p, _d) in ENV.items()}
    for variable, (_raw, expected) in VALID.items():
        assert getattr(settings, by_variable[variable]) == expected, variable


def test_empty_variables_keep_the_default_and_values_are_trimmed() -> None:
    settings = Settings.from_env(environ={"TRIONET_PORT": "", "TRIONET_SEND_QUEUE": " 8 "})
    assert settings.port == 8000
    assert settings.send_queue == 8


def test_variables_without_the_prefix_are_ignored() -> None:
    assert Settings.from_env(environ={"PORT": "1", "DATABASE": "x"}) == Settings()


def test_from_env_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIONET_PORT", "8123")
    assert Settings.from_env().port == 8123


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRIONET_PORT", "abc"),
        ("TRIONET_PORT", "80.5"),
        ("TRIONET_PORT", "70000"),
        ("TRIONET_PORT", "-1"),
        ("TRIONET_SEND_QUEUE", "-5"),
        ("TRIONET_SEND_QUEUE", "0"),
        ("TRIONET_MAX_MESSAGE_BYTES", "-1"),
        ("TRIONET_MAX_CONTENT_CHARS", "-10"),
        ("TRIONET_REPLAY_LIMIT", "-1"),
        ("TRIONET_SESSION_TTL", "-60"),
        ("TRIONET_RATE_LIMIT", "-1"),
        ("TRIONET_RATE_LIMIT", "nan"),
        ("TRIONET_PING_INTERVAL", "0"),
        ("TRIONET_PING_INTERVAL", "inf"),
        ("TRIONET_SHUTDOWN_TIMEOUT", "soon"),
        ("TRIONET_LOG_LEVEL", "chatty"),
        ("TRIONET_COOKIE_SECURE", "maybe"),
        ("TRIONET_OPEN_REGISTRATION", "2"),
        ("TRIONET_ALLOWED_ORIGINS", "example.com"),
        ("TRIONET_ALLOWED_ORIGINS", "https://example.com/app"),
        ("TRIONET_ALLOWED_ORIGINS", "ftp://example.com"),
        ("TRIONET_COOKIE_NAME", "my session;"),
        ("TRIONET_WORKER_ID", "64"),
        ("TRIONET_REDIS_URL", "127.0.0.1:6379"),
        ("TRIONET_REDIS_PREFIX", "has space"),
        ("TRIONET_PROXY_HOPS", "-1"),
        ("TRIONET_RETENTION_DAYS", "-1"),
        ("TRIONET_JWKS_URL", "ftp://backend.example/keys"),
        ("TRIONET_CORS_ORIGINS", "*"),
        ("TRIONET_WEBHOOK_URL", "backend.example/hooks"),
        ("TRIONET_JWT_PUBLIC_KEY", "/nonexistent/key.pem"),
        ("TRIONET_DB_SYNCHRONOUS", "OFF"),
    ],
)
def test_a_bad_value_raises_settings_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ={variable: value})
    assert caught.value.variable == variable
    message = str(caught.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message


@pytest.mark.parametrize("variable", ["TRIONET_API_KEY", "TRIONET_JWT_SECRET"])
def test_a_short_secret_is_refused_without_echoing_it(variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ={variable: "hunter2"})
    assert caught.value.variable == variable
    assert "hunter2" not in str(caught.value)


def test_settings_are_frozen_and_replace_makes_a_copy() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    changed = settings.replace(port=1)
    assert (changed.port, settings.port) == (1, 8000)


def _env_with(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIONET_")}
    env["TRIONET_DATABASE"] = str(tmp_path / "trionet.db")
    env.update(variables)
    return env


async def _run(
    command: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(30):
        return await trio.run_process(
            command, env=env, cwd=cwd, check=False, capture_stdout=True, capture_stderr=True
        )


def _one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


async def test_trionet_serve_with_a_bad_port_prints_one_line_and_fails(tmp_path: Path) -> None:
    result = await _run(
        [str(BIN / "trionet"), "serve"], _env_with(tmp_path, TRIONET_PORT="abc"), tmp_path
    )
    assert result.returncode != 0
    line = _one_line(result.stderr)
    assert "TRIONET_PORT" in line and "'abc'" in line
    assert not (tmp_path / "trionet.db").exists()


async def test_hypercorn_with_a_bad_value_prints_one_line_and_stops(tmp_path: Path) -> None:
    # hypercorn loads the app in a worker process; a worker that exits is not restarted.
    # (hypercorn 0.17/0.18 itself then exits 0 whatever the worker's status: its bug.)
    result = await _run(
        [str(BIN / "hypercorn"), "--worker-class", "trio", "--bind", "127.0.0.1:0",
         "trionet.app:app"],
        _env_with(tmp_path, TRIONET_LOG_LEVEL="chatty"),
        tmp_path,
    )
    line = _one_line(result.stderr)
    assert line.startswith("trionet: configuration error: TRIONET_LOG_LEVEL")
    assert not (tmp_path / "trionet.db").exists()


def test_importing_trionet_app_reads_no_configuration() -> None:
    env = {"TRIONET_PORT": "abc", "PATH": os.environ.get("PATH", "")}
    code = "import trionet.app, trionet.testing; print(type(trionet.app.app).__name__)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "_AppFromEnvironment"


def test_jwt_auth_turns_self_registration_off_by_default() -> None:
    settings = Settings.from_env(environ={"TRIONET_JWT_SECRET": "s" * 32})
    assert settings.open_registration is None and settings.registration_open is False
    assert Settings().registration_open is True


def test_jwt_auth_with_open_registration_is_refused_naming_the_variable() -> None:
    env = {"TRIONET_JWT_SECRET": "s" * 32, "TRIONET_OPEN_REGISTRATION": "true"}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ=env)
    assert caught.value.variable == "TRIONET_OPEN_REGISTRATION"
    assert "s" * 32 not in str(caught.value)
    with pytest.raises(SettingsError):
        Settings(jwt_secret="s" * 32, open_registration=True)


def test_a_database_url_of_another_scheme_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ={"TRIONET_DATABASE": "mysql://root@127.0.0.1/chat"})
    assert caught.value.variable == "TRIONET_DATABASE"
    for ok in ("chat.db", "/var/lib/trionet/chat.db", "sqlite:///chat.db",
               "postgresql://postgres@127.0.0.1:5432/chat", "postgres://u@h/db"):
        assert Settings.from_env(environ={"TRIONET_DATABASE": ok}).database == ok


def test_a_postgresql_url_without_the_extra_is_one_line_naming_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trionet.store import open_store

    for name in [m for m in sys.modules if m == "psycopg" or m.startswith(
            ("psycopg.", "psycopg_pool", "trionet.store.postgres"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    with pytest.raises(SettingsError) as caught:
        open_store("postgresql://postgres@127.0.0.1:5432/chat")
    assert caught.value.variable == "TRIONET_DATABASE"
    assert "pip install 'trionet[postgres]'" in str(caught.value)
    assert "\n" not in str(caught.value)
