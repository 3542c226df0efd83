"""A batch's push as the gateway sized it, and how long a batch waits before its retry."""

import math
from dataclasses import replace
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.common.contracts.push import campaign_payload_size, payload_size
from services.common.store.campaigns import Campaign
from services.pusher.config import RABBITMQ_CONSUMER_TIMEOUT_S, PusherSettings
from services.pusher.delivery import _template, retry_delay
from services.pusher.fcm import build_message, parse_retry_after


@pytest.mark.parametrize(
    ("title", "body", "data"),
    [
        ("Sale", "", {}),
        ("Soldes d'été", "Tout doit partir 🎉", {"deeplink": "/s", "clé": "valeur"}),
    ],
)
@pytest.mark.parametrize("priority", ["high", "normal", "low"])
def test_the_gateway_counts_exactly_what_the_pusher_sends(
    title: str, body: str, data: dict[str, str], priority: str
) -> None:
    campaign = Campaign(uuid4(), title, body, data, priority, {"all": True}, "processing")
    sent = build_message(replace(_template(campaign), token="device-token"))
    assert payload_size(sent) == campaign_payload_size(title, body, data)


def test_a_retry_after_past_the_cap_waits_the_cap() -> None:
    settings = PusherSettings()
    assert retry_delay(settings, 0, 3600.0) == settings.push_retry_delay_max_s
    assert retry_delay(settings, 0, math.inf) == settings.push_retry_delay_max_s
    in_a_day = parse_retry_after("Wed, 21 Oct 2099 07:28:00 GMT")
    assert in_a_day is not None
    assert retry_delay(settings, 0, in_a_day) == settings.push_retry_delay_max_s


def test_the_default_cap_keeps_a_retried_batch_within_the_consumer_timeout() -> None:
    settings = PusherSettings()
    held = settings.push_retry_delay_max_s + settings.task_time_limit_s
    assert held < RABBITMQ_CONSUMER_TIMEOUT_S


def test_a_shorter_retry_after_is_honoured_and_backoff_still_applies() -> None:
    settings = PusherSettings(push_retry_backoff_s=0.5)
    assert retry_delay(settings, 0, 7.0) == 7.0
    assert 0.25 <= retry_delay(settings, 0, 0.0) <= 0.5
    assert retry_delay(PusherSettings(push_retry_delay_max_s=2.0), 10, 0.0) == 2.0


def test_a_cap_that_would_outlast_the_consumer_timeout_is_refused() -> None:
    with pytest.raises(ValidationError, match="consumer timeout"):
        PusherSettings(push_retry_delay_max_s=RABBITMQ_CONSUMER_TIMEOUT_S - 300)
