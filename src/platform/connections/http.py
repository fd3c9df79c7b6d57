"""Where a platform sends the tenant's admin back after consent: GET /connectors/callback.

The signed `state` is the credential (it names the tenant and the connection); the code is
exchanged for a grant right away, and the grant is sealed in the vault."""

from __future__ import annotations

import uuid

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from brandloop import responses
from brandloop.connections import service, webhooks
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.connectors import PlatformError
from brandloop.db.session import tenant_transaction
from brandloop.errors import InvalidInput
from brandloop.observability import WEBHOOK_DELIVERIES
from brandloop.signing import BadToken


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
        async with tenant_transaction(runtime.engine, tenant_id) as session, Platforms() as platforms:
            connection = await service.complete_authorization(
                session, vault(runtime.settings), platforms, connection_id, code=code, params=params
            )
    except InvalidInput:
        return responses.error(404, "NOT_FOUND", "The connection no longer exists.")
    except (httpx.HTTPError, PlatformError) as error:
        return responses.error(
            502, "PLATFORM_ERROR", f"The platform refused the code ({type(error).__name__}): try again."
        )
    return JSONResponse({"connected": True, "connection": connection.name, "connector": connection.connector})


MAX_WEBHOOK_BODY = 1_000_000
REFUSALS = {
    "NOT_FOUND": (404, "No such connection."),
    "DISABLED": (409, "The connection is disabled in Brandloop."),
    "BAD_SIGNATURE": (401, "The signature does not match."),
    "MALFORMED": (400, "The body is not an event of this platform."),
}


def _address(request: Request) -> tuple[str, str, uuid.UUID | None, str]:
    """The connector, its label in metrics (bounded: unknown ones are "unknown"), the connection,
    and the URL as registered with the platform (its query included: some platforms sign there)."""
    connector = request.path_params["connector"]
    label = connector if connector in service.connectors() else "unknown"
    try:
        connection_id: uuid.UUID | None = uuid.UUID(request.path_params["connection"])
    except ValueError:
        return connector, label, None, ""
    url = service.webhook_url(request.app.state.runtime.settings, connector, connection_id)
    return connector, label, connection_id, url + (f"?{request.url.query}" if request.url.query else "")


async def challenge(request: Request) -> Response:
    """A platform checking the push address before it uses it (WeChat): its answer, as plain text."""
    runtime = request.app.state.runtime
    connector, label, connection_id, url = _address(request)
    try:
        if connection_id is None:
            raise webhooks.Refused("NOT_FOUND")
        answer = await webhooks.answer_challenge(
            runtime.engine,
            vault(runtime.settings),
            connector_key=connector,
            connection_id=connection_id,
            url=url,
        )
    except webhooks.Refused as refused:
        WEBHOOK_DELIVERIES.labels(label, f"challenge_{refused.code.lower()}").inc()
        status, message = REFUSALS[refused.code]
        return responses.error(status, refused.code, message)
    WEBHOOK_DELIVERIES.labels(label, "challenge_answered").inc()
    return PlainTextResponse(answer)


async def webhook(request: Request) -> Response:
    runtime = request.app.state.runtime
    connector, label, connection_id, url = _address(request)
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BODY:
        WEBHOOK_DELIVERIES.labels(label, "too_large").inc()
        return responses.error(413, "TOO_LARGE", f"At most {MAX_WEBHOOK_BODY} bytes.")
    if connection_id is None:
        WEBHOOK_DELIVERIES.labels(label, "not_found").inc()
        return responses.error(404, "NOT_FOUND", "No such connection.")
    try:
        received = await webhooks.receive(
            runtime.engine,
            vault(runtime.settings),
            connector_key=connector,
            connection_id=connection_id,
            url=url,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
    except webhooks.Refused as refused:
        WEBHOOK_DELIVERIES.labels(label, refused.code.lower()).inc()
        status, message = REFUSALS[refused.code]
        return responses.error(status, refused.code, message)
    WEBHOOK_DELIVERIES.labels(label, "accepted").inc()
    if received.answer is not None:
        return PlainTextResponse(received.answer)  # the answer the platform reads
    return JSONResponse({"received": True, "new": received.new})
