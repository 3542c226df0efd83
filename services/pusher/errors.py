"""Pusher errors: each carries a stable code; its base class says whether to retry."""

from services.common.errors import BusinessError, OffloadError, TransientError


class PusherError(OffloadError):
    """Base of every failure the pusher reports."""

    code = "pusher_error"


class InvalidMessage(PusherError, BusinessError):
    """firebase-admin refused to build the message (bad field, non-string data, too big)."""

    code = "invalid_message"


class CredentialsError(PusherError):
    """GOOGLE_APPLICATION_CREDENTIALS is not a usable service account file (an operator's fix)."""

    code = "fcm_credentials"


class AccessTokenError(PusherError, TransientError):
    """No OAuth2 access token could be obtained for FCM; nothing was sent."""

    code = "fcm_access_token"
