"""Pusher settings: where pushes go, and what production refuses (issue 12, item 10)."""

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.pusher.config import FCM_PRODUCTION_URL, PusherSettings
from tests.support.processes import run_module
from tests.support.service_account import service_account_file

REPO = Path(__file__).resolve().parents[2]
BROKER = "amqp://offload:secret@rabbit:5672//"


@pytest.fixture(autouse=True)
def no_google_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own GOOGLE_APPLICATION_CREDENTIALS would choose real FCM."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


def production(**values: object) -> PusherSettings:
    return PusherSettings(environment="production", amqp_url=BROKER, **values)  # type: ignore[arg-type]


def test_production_without_credentials_refuses_the_sandbox() -> None:
    with pytest.raises(ValidationError) as caught:
        production()
    message = str(caught.value)
    assert "no FCM credentials in production" in message
    for fix in ("GOOGLE_APPLICATION_CREDENTIALS", "OFFLOAD_FCM_CREDENTIALS=adc"):
        assert fix in message
    assert "OFFLOAD_FCM_SANDBOX=true" in message
    assert "secret" not in message  # the other settings (the broker password) are not printed


def test_production_refuses_the_sandbox_token_at_an_overridden_url_too() -> None:
    with pytest.raises(ValidationError, match="no FCM credentials in production"):
        production(fcm_url="http://fcm-sandbox:9099")


def test_production_sends_to_the_sandbox_when_told_to() -> None:
    settings = production(fcm_sandbox=True, sandbox_host="fcm-sandbox")
    assert settings.credentials_source == "sandbox"
    assert settings.uses_sandbox
    assert settings.fcm_base_url() == "http://fcm-sandbox:9099"


def test_production_accepts_a_key_file_or_application_default_credentials(
    tmp_path: Path,
) -> None:
    key_file = str(service_account_file(tmp_path / "sa.json"))
    from_file = production(GOOGLE_APPLICATION_CREDENTIALS=key_file)
    assert from_file.credentials_source == "file"
    adc = production(fcm_credentials="adc")
    assert adc.credentials_source == "adc"
    for settings in (from_file, adc):
        assert not settings.uses_sandbox
        assert settings.fcm_base_url() == FCM_PRODUCTION_URL


def test_the_choice_is_never_ambiguous(tmp_path: Path) -> None:
    key_file = str(service_account_file(tmp_path / "sa.json"))
    with pytest.raises(ValidationError, match="OFFLOAD_FCM_SANDBOX=true sends to the FCM sandbox"):
        PusherSettings(fcm_sandbox=True, GOOGLE_APPLICATION_CREDENTIALS=key_file)
    with pytest.raises(ValidationError, match="OFFLOAD_FCM_SANDBOX=true sends to the FCM sandbox"):
        PusherSettings(fcm_sandbox=True, fcm_credentials="adc")
    with pytest.raises(ValidationError, match="needs GOOGLE_APPLICATION_CREDENTIALS"):
        PusherSettings(fcm_credentials="file")
    with pytest.raises(ValidationError, match="fcm_credentials"):
        PusherSettings(fcm_credentials="sandbox")  # type: ignore[arg-type]


def test_the_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFLOAD_FCM_CREDENTIALS", "adc")
    assert PusherSettings().credentials_source == "adc"
    monkeypatch.delenv("OFFLOAD_FCM_CREDENTIALS")
    monkeypatch.setenv("OFFLOAD_FCM_SANDBOX", "true")
    assert production().credentials_source == "sandbox"


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_keep_the_sandbox_without_credentials(environment: str) -> None:
    settings = PusherSettings(environment=environment)  # type: ignore[arg-type]
    assert settings.credentials_source == "sandbox"
    assert settings.uses_sandbox
    assert settings.fcm_base_url() == "http://127.0.0.1:9099"


def test_a_pusher_without_credentials_exits_at_start_in_production(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OFFLOAD_") and k != "GOOGLE_APPLICATION_CREDENTIALS"
    }
    env.update(
        OFFLOAD_ENVIRONMENT="production",
        OFFLOAD_AMQP_URL=BROKER,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    done = run_module("services.pusher", env)
    assert done.returncode != 0
    assert "no FCM credentials in production" in done.stderr, done.stderr
