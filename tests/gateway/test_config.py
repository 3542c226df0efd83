import os
import secrets
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from services.common.config import DEV_API_KEY
from services.gateway.config import GatewaySettings
from tests.support.processes import run_module


def test_development_falls_back_to_the_printed_dev_key() -> None:
    assert GatewaySettings(environment="development", api_keys="").accepted_keys() == {DEV_API_KEY}


def test_keys_are_comma_separated() -> None:
    settings = GatewaySettings(environment="test", api_keys=" a , b,,")
    assert settings.accepted_keys() == {"a", "b"}


def test_keys_are_required_outside_development() -> None:
    with pytest.raises(ValidationError, match="OFFLOAD_API_KEYS must be set"):
        GatewaySettings(
            environment="production", api_keys="", amqp_url="amqp://offload:secret@rabbit:5672//"
        )


def test_placeholder_secrets_are_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="development key"):
        GatewaySettings(
            environment="production",
            api_keys=DEV_API_KEY,
            amqp_url="amqp://offload:secret@rabbit:5672//",
        )
    with pytest.raises(ValidationError, match="guest account"):
        GatewaySettings(environment="production", api_keys="real")


# --- production refuses placeholder and weak keys (issue 12, item 10) -----------------------

REPO = Path(__file__).resolve().parents[2]
BROKER = "amqp://offload:secret@rabbit:5672//"
STRONG_KEY = "Jq3vX9pL2mT7wR5yB8nC4kF6hD1sG0aZ"  # 32 characters, no placeholder word


def example_keys() -> dict[str, str]:
    """OFFLOAD_API_KEYS as .env.example and the Kubernetes example Secret ship it."""
    env = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    secret = yaml.safe_load((REPO / "deploy/k8s/secret.example.yaml").read_text())
    return {
        ".env.example": env["OFFLOAD_API_KEYS"],
        "secret.example.yaml": secret["stringData"]["OFFLOAD_API_KEYS"],
    }


def production(api_keys: str) -> GatewaySettings:
    return GatewaySettings(environment="production", api_keys=api_keys, amqp_url=BROKER)


@pytest.mark.parametrize("source", ["secret.example.yaml", ".env.example"])
def test_production_refuses_the_shipped_example_keys(source: str) -> None:
    key = example_keys()[source]
    with pytest.raises(ValidationError, match="OFFLOAD_API_KEYS: key 1 of 1 is a placeholder"):
        production(key)


@pytest.mark.parametrize(
    "key",
    [
        "please-changeme-" + "x" * 32,
        "CHANGE_ME_" + "x" * 32,
        "example-" + "x" * 32,
        "Placeholder" + "x" * 32,
    ],
)
def test_production_refuses_any_key_that_says_it_is_a_placeholder(key: str) -> None:
    with pytest.raises(ValidationError, match="is a placeholder"):
        production(key)


def test_production_refuses_keys_shorter_than_32_characters() -> None:
    short = STRONG_KEY[:31]
    with pytest.raises(ValidationError) as caught:
        production(f"{STRONG_KEY},{short}")
    message = str(caught.value)
    assert "OFFLOAD_API_KEYS: key 2 of 2 has 31 characters" in message
    assert "at least 32 characters" in message  # the fix
    assert short not in message  # a refused key is never printed, nor the other settings
    assert "secret" not in message


def test_production_refuses_the_development_key_among_others() -> None:
    with pytest.raises(ValidationError, match="key 2 of 2 is the development key"):
        production(f"{STRONG_KEY}, {DEV_API_KEY}")


def test_production_accepts_random_keys_of_32_characters_or_more() -> None:
    generated = secrets.token_urlsafe(32)
    settings = production(f"{STRONG_KEY},{generated}")
    assert settings.accepted_keys() == {STRONG_KEY, generated}


def test_development_and_test_keep_accepting_short_and_example_keys() -> None:
    assert GatewaySettings(environment="test", api_keys="test-key").accepted_keys() == {"test-key"}
    development = GatewaySettings(environment="development", api_keys=DEV_API_KEY)
    assert development.accepted_keys() == {DEV_API_KEY}


def test_the_gateway_exits_at_start_on_a_placeholder_key_in_production() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update(
        OFFLOAD_ENVIRONMENT="production",
        OFFLOAD_API_KEYS=example_keys()[".env.example"],
        OFFLOAD_AMQP_URL=BROKER,
        OFFLOAD_GATEWAY_PORT="1",  # never reached: nothing may listen
    )
    done = run_module("services.gateway", env)
    assert done.returncode != 0
    assert "OFFLOAD_API_KEYS: key 1 of 1 is a placeholder" in done.stderr, done.stderr
    assert "change-me-api-key" not in done.stderr
