"""Pusher errors: each carries a stable code and whether retrying the work can help."""


class PusherError(Exception):
    """Base of every failure the pusher reports."""

    code: str = "pusher_error"
    retryable: bool = False
    http_status: int = 500


class InvalidMessage(PusherError):
    """firebase-admin refused to build the message (bad field, non-string data, too big)."""

    code = "invalid_message"
    http_status = 422


class CredentialsError(PusherError):
    """GOOGLE_APPLICATION_CREDENTIALS is not a usable service account file."""

    code = "fcm_credentials"


class AccessTokenError(PusherError):
    """No OAuth2 access token could be obtained for FCM; nothing was sent."""

    code = "fcm_access_token"
    retryable = True
