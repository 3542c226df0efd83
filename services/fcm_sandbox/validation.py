"""The checks FCM applies to a message before accepting it (the subset the sandbox mirrors)."""

from typing import Any

from services.fcm_sandbox.fcm_errors import invalid_argument

# https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode (INVALID_ARGUMENT): the
# payload limit counts keys and values, 4096 bytes, 2048 for messages to topics. What counts is
# what reaches the device: data and notification, Android's notification fields included.
MAX_PAYLOAD_BYTES = 4096
MAX_TOPIC_PAYLOAD_BYTES = 2048
MESSAGE_FIELDS = frozenset(
    {
        "name",
        "data",
        "notification",
        "android",
        "webpush",
        "apns",
        "fcm_options",
        "fcmOptions",
        "token",
        "fid",
        "topic",
        "condition",
    }
)
TARGETS = ("token", "fid", "topic", "condition")
RESERVED_DATA_KEYS = frozenset({"", "from", "message_type", "notification"})
RESERVED_DATA_PREFIXES = ("google", "gcm")

Rejection = tuple[int, bytes]


def payload_bytes(message: dict[str, Any]) -> int:
    """UTF-8 bytes of the data and notification keys and values (android.notification's
    too), as FCM counts them."""
    android = message.get("android")
    parts = [message.get("data"), message.get("notification")]
    if isinstance(android, dict):
        parts.append(android.get("notification"))
    total = 0
    for part in parts:
        if isinstance(part, dict):
            for key, value in part.items():
                total += len(key.encode()) + len(str(value).encode())
    return total


def validate(body: Any) -> tuple[dict[str, Any], Rejection | None]:
    """The message of a send request, and the error FCM would answer with, if any."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        return {}, invalid_argument("Invalid JSON payload received. 'message' is required.")
    message: dict[str, Any] = body["message"]
    unknown = message.keys() - MESSAGE_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        return message, invalid_argument(
            f"Invalid JSON payload received. Unknown name \"{name}\" at 'message': "
            "Cannot find field.",
            "message",
        )
    targets = [field for field in TARGETS if field in message]
    if not targets:
        return message, invalid_argument("Recipient of the message is not set.")
    if len(targets) > 1:
        return message, invalid_argument(
            f"Invalid value at 'message' (oneof), oneof field 'target' is already set. "
            f"Cannot set '{targets[1]}'",
            "message",
        )
    for field in targets:
        if not isinstance(message[field], str) or not message[field]:
            return message, invalid_argument(
                f"Invalid value at 'message.{field}' (TYPE_STRING)", f"message.{field}"
            )
    rejection = _check_data(message.get("data"))
    if rejection is not None:
        return message, rejection
    limit = (
        MAX_TOPIC_PAYLOAD_BYTES
        if "topic" in message or "condition" in message
        else MAX_PAYLOAD_BYTES
    )
    if payload_bytes(message) > limit:
        return message, invalid_argument("Message is too big")
    return message, None


def _check_data(data: Any) -> Rejection | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        return invalid_argument("Invalid value at 'message.data' (map)", "message.data")
    for index, (key, value) in enumerate(data.items()):
        if not isinstance(value, str):
            where = f"message.data[{index}].value"
            return invalid_argument(
                f"Invalid value at '{where}' (TYPE_STRING), {json_repr(value)}", where
            )
        if key in RESERVED_DATA_KEYS or key.startswith(RESERVED_DATA_PREFIXES):
            return invalid_argument(f"Invalid data payload key: {key}")
    return None


def json_repr(value: Any) -> str:
    """How a protobuf JSON parse error quotes the offending value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
