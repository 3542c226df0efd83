"""Device registry: register, unregister and bulk-import push tokens."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status

from services.gateway.deps import ApiKey, ClientsDep
from services.gateway.devices.importer import RowParser
from services.gateway.devices.schemas import DeviceRegistration, DeviceView, ImportSummary
from services.gateway.errors import ErrorBody
from services.gateway.line_reader import openapi_body, request_format

router = APIRouter(prefix="/v1/devices", tags=["devices"])

_IMPORT_BODY = openapi_body(
    '{"token": "t1", "platform": "android", "user_id": "u1"}\n',
    "token,platform,user_id,topics\nt1,android,u1,news;sport\n",
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceView,
    responses={200: {"model": DeviceView, "description": "Known token: updated and active"}},
)
async def register_device(
    body: Annotated[DeviceRegistration, Body()], clients: ClientsDep, _: ApiKey, response: Response
) -> dict[str, Any]:
    """Register a push token (201), or update and re-activate a known one (200)."""
    device, created = await clients.devices.register(
        body.token, body.platform, body.user_id, body.topics
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return device


@router.post(
    "/import",
    response_model=ImportSummary,
    responses={
        415: {"model": ErrorBody, "description": "Neither NDJSON nor CSV, or compressed"},
        422: {"model": ErrorBody, "description": "The CSV header is unusable"},
    },
    openapi_extra={"requestBody": _IMPORT_BODY},
)
async def import_devices(request: Request, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """Bulk-register tokens from NDJSON or CSV, streamed; bad lines are reported, good ones land."""
    fmt = request_format(request.headers)
    parser = RowParser(fmt)
    inserted = await clients.devices.import_stream(request.stream(), parser)
    good = parser.received - parser.rejected
    return {
        "received": parser.received,
        "inserted": inserted,
        "updated": good - inserted,
        "rejected": parser.rejected,
        "errors": parser.errors,
    }


@router.get("/{token:path}", response_model=DeviceView, responses={404: {"model": ErrorBody}})
async def get_device(token: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """The device registered with this token, active or not."""
    return await clients.devices.get(token)


@router.delete(
    "/{token:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={404: {"model": ErrorBody, "description": "Unknown or already unregistered"}},
)
async def unregister_device(token: str, clients: ClientsDep, _: ApiKey) -> Response:
    """Unregister a token: it gets no more pushes until it is registered again."""
    await clients.devices.unregister(token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
