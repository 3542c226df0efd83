"""Gateway errors: one base, narrow subclasses carrying their HTTP status, one handler."""

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.gateway.jobs.schemas import JobError


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: JobError


class GatewayError(Exception):
    """Base of every error the gateway shows to a client."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class Unauthorized(GatewayError):
    """No bearer key, or one that is not accepted."""

    status_code = 401
    code = "unauthorized"


class JobNotFound(GatewayError):
    """The job id was never issued by this system."""

    status_code = 404
    code = "job_not_found"


class JobAlreadyFinished(GatewayError):
    """The job cannot be cancelled because it already finished."""

    status_code = 409
    code = "job_finished"


class IdempotencyKeyReused(GatewayError):
    """The Idempotency-Key was used before for a different request."""

    status_code = 422
    code = "idempotency_key_reused"


class BrokerUnavailable(GatewayError):
    """The broker did not confirm the job in time; nothing was accepted."""

    status_code = 503
    code = "broker_unavailable"


class DatabaseUnavailable(GatewayError):
    """The job could not be recorded; the client should retry."""

    status_code = 503
    code = "database_unavailable"


class RedisUnavailable(GatewayError):
    """Redis (the score cache and the in-flight claims) did not answer; nothing was accepted."""

    status_code = 503
    code = "redis_unavailable"


class DeviceNotFound(GatewayError):
    """No device has this token (to unregister: no active one)."""

    status_code = 404
    code = "device_not_found"


class UnsupportedImportType(GatewayError):
    """A device import or data upload was sent as something other than NDJSON or CSV."""

    status_code = 415
    code = "unsupported_media_type"


class UnsupportedContentEncoding(UnsupportedImportType):
    """A device import or data upload was sent compressed; bodies are read as sent, not decoded."""

    code = "unsupported_content_encoding"


class UploadTooWide(GatewayError):
    """The upload's rows bring more distinct keys than OFFLOAD_UPLOAD_MAX_COLUMNS; nothing kept."""

    status_code = 422
    code = "too_many_columns"


class InvalidImportHeader(GatewayError):
    """The CSV header row does not name the columns an import needs."""

    status_code = 422
    code = "invalid_csv_header"


class PayloadTooLarge(GatewayError):
    """The request body is larger than its route takes (see services/gateway/limits.py)."""

    status_code = 413
    code = "payload_too_large"


class TooManyStreams(GatewayError):
    """Too many event streams are open for this API key or in this gateway process."""

    status_code = 429
    code = "too_many_streams"


def error_response(exc: GatewayError) -> JSONResponse:
    """The answer to a GatewayError: {"error": {"code", "message"}} with its status."""
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def handle_gateway_error(request: Request, exc: Exception) -> JSONResponse:
    """Render any GatewayError raised in a route or dependency (see error_response)."""
    assert isinstance(exc, GatewayError)
    return error_response(exc)


class CampaignNotFound(GatewayError):
    """No campaign has this id."""

    status_code = 404
    code = "campaign_not_found"


class CampaignStateConflict(GatewayError):
    """The campaign is not in a state that allows this (e.g. sent twice)."""

    status_code = 409
    code = "campaign_state_conflict"


class ReportNotFound(GatewayError):
    """No report has this id."""

    status_code = 404
    code = "report_not_found"


class ReportGone(GatewayError):
    """The report has no file to download: not ready yet, failed, or expired."""

    status_code = 404
    code = "report_file_not_found"


class InvalidReportSpec(GatewayError):
    """The report spec does not fit its data (e.g. a column its upload never had)."""

    status_code = 422
    code = "invalid_report_spec"


class UploadNotFound(GatewayError):
    """No upload has this id."""

    status_code = 404
    code = "upload_not_found"


class UploadTooLarge(PayloadTooLarge):
    """The upload is larger than OFFLOAD_UPLOAD_MAX_BYTES; nothing of it was kept."""

    code = "upload_too_large"


class NoValidRows(GatewayError):
    """Not one line of the upload was a valid row; nothing was kept."""

    status_code = 422
    code = "no_valid_rows"

    def __init__(self, message: str, rejected: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.rejected = rejected
        self.errors = errors


async def handle_no_valid_rows(request: Request, exc: Exception) -> JSONResponse:
    """Render NoValidRows like any GatewayError, with the rejected lines in the error."""
    assert isinstance(exc, NoValidRows)
    error = {"code": exc.code, "message": exc.message, "rejected": exc.rejected}
    return JSONResponse({"error": error | {"errors": exc.errors}}, status_code=exc.status_code)
