"""Device registry bodies and the field rules they share with the bulk importer."""

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.gateway.line_reader import MAX_ERRORS, LineError

Platform = Literal["android", "ios", "web"]
PLATFORMS: frozenset[str] = frozenset({"android", "ios", "web"})

# The unique btree index on devices.token holds entries up to 2704 bytes; FCM tokens are ~160.
TOKEN_MAX_BYTES = 2048
USER_ID_MAX_CHARS = 256
TOPIC_MAX_CHARS = 256
TOPICS_MAX = 256

_TOKEN = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]+")
_USER_ID = re.compile(r"[^\x00-\x1f\x7f-\x9f]+")
# FCM's own rule for topic names.
_TOPIC = re.compile(r"[a-zA-Z0-9\-_.~%]+")


def check_token(token: str) -> str:
    """A push token: 1-2048 bytes, no whitespace or control characters."""
    if not _TOKEN.fullmatch(token):
        raise ValueError("token must be non-empty, without whitespace or control characters")
    if len(token) > TOKEN_MAX_BYTES or (
        not token.isascii() and len(token.encode()) > TOKEN_MAX_BYTES
    ):
        raise ValueError(f"token is longer than {TOKEN_MAX_BYTES} bytes")
    return token


def check_platform(platform: str) -> str:
    """One of android, ios, web."""
    if platform not in PLATFORMS:
        raise ValueError("platform must be one of android, ios, web")
    return platform


def check_user_id(user_id: str) -> str:
    """A user id: 1-256 characters, no control characters."""
    if len(user_id) > USER_ID_MAX_CHARS:
        raise ValueError(f"user_id is longer than {USER_ID_MAX_CHARS} characters")
    if not _USER_ID.fullmatch(user_id):
        raise ValueError("user_id must be non-empty, without control characters")
    return user_id


def check_topics(topics: list[str]) -> list[str]:
    """FCM topic names ([a-zA-Z0-9-_.~%]+, at most 256 chars), duplicates dropped, in order."""
    for topic in topics:
        if not isinstance(topic, str) or not _TOPIC.fullmatch(topic):
            raise ValueError(f"topic {topic!r} is not a valid FCM topic name ([a-zA-Z0-9-_.~%]+)")
        if len(topic) > TOPIC_MAX_CHARS:
            raise ValueError(f"topic is longer than {TOPIC_MAX_CHARS} characters")
    unique = list(dict.fromkeys(topics))
    if len(unique) > TOPICS_MAX:
        raise ValueError(f"more than {TOPICS_MAX} topics")
    return unique


class DeviceRegistration(BaseModel):
    """Register a push token, or update and re-activate it if it is known."""

    model_config = ConfigDict(extra="forbid")

    # The lengths bound what is parsed; the validators then apply the rules the importer shares
    # (a token's bound is in bytes, and topics are counted without duplicates).
    token: str = Field(max_length=TOKEN_MAX_BYTES, examples=["fMEP0vJqS0:APA91bH..."])
    platform: Platform
    user_id: str | None = Field(
        default=None, max_length=USER_ID_MAX_CHARS, description="null or omitted: no user"
    )
    topics: list[Annotated[str, Field(max_length=TOPIC_MAX_CHARS)]] | None = Field(
        default=None,
        max_length=TOPICS_MAX,
        description="Replaces the device's topics; omitted or null keeps them",
    )

    @field_validator("token")
    @classmethod
    def _token(cls, value: str) -> str:
        return check_token(value)

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str | None) -> str | None:
        return None if value is None else check_user_id(value)

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_topics(value)


class DeviceView(BaseModel):
    """A registered device as clients see it."""

    token: str
    platform: Platform
    user_id: str | None
    topics: list[str]
    active: bool
    deactivated_reason: str | None = Field(examples=["unregistered", "UNREGISTERED"])
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None


class ImportSummary(BaseModel):
    """What a bulk import did: `inserted` new tokens, `updated` rows for known ones."""

    received: int = Field(description="Non-blank data lines (the CSV header not counted)")
    inserted: int = Field(description="Tokens that were not in the registry")
    updated: int = Field(
        description="Good rows for tokens already known, including repeats within the file"
    )
    rejected: int
    errors: list[LineError] = Field(
        max_length=MAX_ERRORS, description="The first 1,000 rejected lines"
    )
