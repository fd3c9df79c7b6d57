"""Where a platform sends the tenant's admin back after consent: GET /connectors/callback.

The signed `state` is the credential (it names the tenant and the connection); the code is
exchanged for a grant right away, and the grant is sealed in the vault."""

from __future__ import annotations

import uuid

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse

from brandloop import responses
from brandloop.connections import service, webhooks
from brandloop.connections.vault import vault
from brandloop.db.session import tenant_transaction
from brandloop.errors import InvalidInput
from brandloop.signing import BadToken

PLATFORM_TIMEOUT = httpx.Timeout(15.0)


async def callback(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    params = dict(request.query_params)
    state, code = params.pop("state", None), params.pop("code", None)
    if not state or not code:
        return responses.error(
            400, "INVALID_CALLBACK", "The platform sent no code or no state: start the connection again."
        )
    try:
        tenant_id, connection_id = service.read_state(runtime.settings, state)
    except BadToken:
        return responses.error(
            400, "INVALID_STATE", "This authorization is not valid or has expired: start it again."
        )
    try:
        async with (
            tenant_transaction(runtime.engine, tenant_id) as session,
            httpx.AsyncClient(timeout=PLATFORM_TIMEOUT) as client,
        ):
            connection = await service.complete_authorization(
                session, vault(runtime.settings), client, connection_id, code=code, params=params
            )
    except InvalidInput:
        return responses.error(404, "NOT_FOUND", "The connection no longer exists.")
    except httpx.HTTPError as error:
        return responses.error(
            502, "PLATFORM_ERROR", f"The platform refused the code ({type(error).__name__}): try again."
        )
    return JSONResponse({"connected": True, "connection": connection.name, "connector": connection.connector})


MAX_WEBHOOK_BODY = 1_000_000
REFUSALS = {
    "NOT_FOUND": (404, "No such connection."),
    "BAD_SIGNATURE": (401, "The signature does not match."),
    "MALFORMED": (400, "The body is not an event of this platform."),
}


async def webhook(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BODY:
        return responses.error(413, "TOO_LARGE", f"At most {MAX_WEBHOOK_BODY} bytes.")
    try:
        connection_id = uuid.UUID(request.path_params["connection"])
    except ValueError:
        return responses.error(404, "NOT_FOUND", "No such connection.")
    try:
        stored = await webhooks.receive(
            runtime.engine,
            vault(runtime.settings),
            connector_key=request.path_params["connector"],
            connection_id=connection_id,
            url=str(request.url),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
    except webhooks.Refused as refused:
        status, message = REFUSALS[refused.code]
        return responses.error(status, refused.code, message)
    return JSONResponse({"received": True, "new": stored})
