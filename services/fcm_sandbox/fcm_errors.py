"""FCM HTTP v1 error bodies, in the exact shape Google's API returns them.

Codes, HTTP statuses and canonical statuses follow
https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
"""

import json
from typing import Any, NamedTuple

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
INVALID_TOKEN_MESSAGE = "The registration token is not a valid FCM registration token"


class FcmErrorSpec(NamedTuple):
    http_status: int
    status: str
    message: str


# errorCode -> how FCM answers it. INVALID_ARGUMENT, injected by a rule, is the invalid
# registration token case (the other INVALID_ARGUMENT causes come from validation).
FCM_ERRORS: dict[str, FcmErrorSpec] = {
    "UNREGISTERED": FcmErrorSpec(404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": FcmErrorSpec(400, "INVALID_ARGUMENT", INVALID_TOKEN_MESSAGE),
    "SENDER_ID_MISMATCH": FcmErrorSpec(403, "PERMISSION_DENIED", "SenderId mismatch"),
    "QUOTA_EXCEEDED": FcmErrorSpec(
        429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'."
    ),
    "UNAVAILABLE": FcmErrorSpec(503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": FcmErrorSpec(500, "INTERNAL", "Internal error encountered."),
    "THIRD_PARTY_AUTH_ERROR": FcmErrorSpec(
        401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"
    ),
    "UNSPECIFIED_ERROR": FcmErrorSpec(500, "INTERNAL", "Unspecified error."),
}


def error_body(
    http_status: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> bytes:
    """A Google API error response body."""
    error: dict[str, Any] = {"code": http_status, "message": message, "status": status}
    if details:
        error["details"] = details
    return json.dumps({"error": error}).encode()


def fcm_error_body(error_code: str) -> tuple[int, bytes]:
    """The HTTP status and body FCM sends for one of its error codes."""
    spec = FCM_ERRORS[error_code]
    details = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}]
    return spec.http_status, error_body(spec.http_status, spec.status, spec.message, details)


def invalid_argument(message: str, field: str | None = None) -> tuple[int, bytes]:
    """400 INVALID_ARGUMENT for a malformed message, with a BadRequest field violation."""
    details: list[dict[str, Any]] = [{"@type": FCM_ERROR_TYPE, "errorCode": "INVALID_ARGUMENT"}]
    if field is not None:
        details = [
            {
                "@type": BAD_REQUEST_TYPE,
                "fieldViolations": [{"field": field, "description": message}],
            }
        ]
    return 400, error_body(400, "INVALID_ARGUMENT", message, details)


UNAUTHENTICATED = error_body(
    401,
    "UNAUTHENTICATED",
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential.",
)
