import pytest
from pydantic import ValidationError

from services.common.config import DEV_API_KEY
from services.gateway.config import GatewaySettings


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
