"""The Starlette application: GraphQL, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from cachetools import LRUCache
from joserfc.jwk import OctKey
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry import Schema
from strawberry.http.ides import get_graphql_ide_html
from strawberry.types import ExecutionResult

from brandloop.auth.jwt import JwtVerifier
from brandloop.auth.permissions import Principal
from brandloop.auth.service import authenticate
from brandloop.connections import http as connections_http
from brandloop.connections import messaging
from brandloop.connections.service import CALLBACK_PATH
from brandloop.db import migrate
from brandloop.db.engine import create_engine, resolve_url
from brandloop.db.session import new_session
from brandloop.errors import Unauthenticated
from brandloop.graphql.context import RequestContext
from brandloop.graphql.errors import format_error
from brandloop.graphql.planner import CompiledPlan, PlanCache, PlannedData, fetch_json, plan_cache, plan_key
from brandloop.graphql.schema import create_schema
from brandloop.jobs.worker import run as run_jobs
from brandloop.nps import http as survey_http
from brandloop.observability import HTTP_REQUESTS, HTTP_SECONDS, observe_operation
from brandloop.settings import Settings, get_settings
from brandloop.signing import signing_key

log = structlog.get_logger("brandloop.app")

PERSISTED_QUERIES = 10_000
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass
class Runtime:
    """What the process shares between requests; nothing tenant-specific lives here."""

    settings: Settings
    engine: AsyncEngine
    schema: Schema
    verifier: JwtVerifier
    plans: PlanCache
    persisted: LRUCache[str, str]
    """Persisted queries by SHA-256: each process learns them on its own, as the protocol allows."""
    signing_key: OctKey
    """Signs and checks the tokens the platform hands out (survey links, authorization states)."""

    def cached_plan(self, payload: dict[str, Any], principal: Principal) -> CompiledPlan | None:
        """The compiled plan of an identical earlier request, if the caller may run it."""
        if not self.settings.planner:
            return None
        key = plan_key(payload["query"], payload.get("operationName"), payload.get("variables"))
        plan = self.plans.get(key) if key is not None else None
        if plan is None or not all(principal.can(p) for p in plan.permissions):
            return None
        return plan


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status)


def _bearer(request: Request) -> str | None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential.strip() or None


async def _read_operation(request: Request, limit: int) -> dict[str, Any] | JSONResponse:
    if "application/json" not in request.headers.get("content-type", ""):
        return _error(415, "BAD_REQUEST", "Send the operation as JSON (Content-Type: application/json).")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return _error(413, "BAD_REQUEST", f"The request body is over {limit} bytes.")
    body = await request.body()
    if len(body) > limit:
        return _error(413, "BAD_REQUEST", f"The request body is over {limit} bytes.")
    try:
        payload = json.loads(body)
    except ValueError:
        return _error(400, "BAD_REQUEST", "The request body is not valid JSON.")
    if isinstance(payload, list):
        return _error(400, "BAD_REQUEST", "Batched operations are not accepted; send one per request.")
    if not isinstance(payload, dict):
        return _error(400, "BAD_REQUEST", 'Send {"query": "...", "variables": {...}}.')
    if not isinstance(payload.get("query"), str) and _persisted(payload) is None:
        return _error(400, "BAD_REQUEST", 'Send {"query": "...", "variables": {...}}.')
    if not isinstance(payload.get("variables") or {}, dict):
        return _error(400, "BAD_REQUEST", "`variables` must be an object.")
    if not isinstance(payload.get("operationName") or "", str):
        return _error(400, "BAD_REQUEST", "`operationName` must be a string.")
    return payload


def _persisted(payload: dict[str, Any]) -> Any:
    extensions = payload.get("extensions")
    return extensions.get("persistedQuery") if isinstance(extensions, dict) else None


def _persisted_query(payload: dict[str, Any], persisted: LRUCache[str, str]) -> JSONResponse | None:
    """Automatic persisted queries (Apollo's protocol): a client sends the query's SHA-256 in
    place of its text, and the text once when this process does not know it yet. Only
    authenticated callers get here, so strangers cannot fill the store."""
    extension = _persisted(payload)
    if extension is None:
        return None
    digest = extension.get("sha256Hash") if isinstance(extension, dict) else None
    if not isinstance(digest, str) or extension.get("version") != 1:
        return _error(400, "BAD_REQUEST", "persistedQuery needs version 1 and a sha256Hash.")
    query = payload.get("query")
    if isinstance(query, str):
        if hashlib.sha256(query.encode()).hexdigest() != digest:
            return _error(
                400, "PERSISTED_QUERY_HASH_MISMATCH", "The sha256Hash is not the hash of the query."
            )
        persisted[digest] = query
        return None
    known = persisted.get(digest)
    if known is None:
        # Status 200 with this message and code is what APQ clients expect before sending the text.
        return JSONResponse(
            {
                "errors": [
                    {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
                ]
            }
        )
    payload["query"] = known
    return None


async def graphql(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    if request.method == "GET":
        if runtime.settings.graphiql_enabled:
            return HTMLResponse(get_graphql_ide_html())
        return _error(405, "BAD_REQUEST", "POST GraphQL operations as JSON.")
    payload = await _read_operation(request, runtime.settings.max_body_bytes)
    if isinstance(payload, Response):
        return payload
    credential = _bearer(request)
    if credential is None:
        return _error(401, "UNAUTHENTICATED", "Send `Authorization: Bearer <API key or JWT>`.")
    request_id = request.state.request_id
    async with new_session(runtime.engine) as session, session.begin():
        try:
            principal = await authenticate(session, credential, runtime.verifier)
        except Unauthenticated as error:
            return _error(401, error.code, str(error))
        structlog.contextvars.bind_contextvars(tenant_id=str(principal.tenant_id))
        refused = _persisted_query(payload, runtime.persisted)
        if refused is not None:
            return refused
        plan = runtime.cached_plan(payload, principal)
        if plan is not None:
            # Answered before: parsed, validated, checked and compiled then; run the statement.
            started = time.perf_counter()
            data = await fetch_json(session, plan)
            observe_operation(plan.label, time.perf_counter() - started, failed=False)
            cost = {"requested": plan.cost, "maximum": runtime.settings.max_query_cost}
            result = ExecutionResult(
                data=PlannedData(data), errors=None, extensions={"cost": cost, "planned": True}
            )  # type: ignore[arg-type]
        else:
            context = RequestContext(principal, session, runtime.settings, request_id)
            result = await runtime.schema.execute(
                payload["query"],
                variable_values=payload.get("variables"),
                context_value=context,
                operation_name=payload.get("operationName"),
            )
        # The transaction has committed: only now may the client hear that writes succeeded.
    if isinstance(result.data, PlannedData):
        # PostgreSQL wrote the data: splice its JSON text in rather than decode and re-encode it.
        extensions = b',"extensions":' + json.dumps(result.extensions).encode() if result.extensions else b""
        return Response(
            b'{"data":' + result.data.json.encode() + extensions + b"}", media_type="application/json"
        )
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [format_error(e, request_id) for e in result.errors]
    if result.extensions:
        body["extensions"] = result.extensions
    return JSONResponse(body)


async def unexpected(request: Request, error: Exception) -> Response:
    log.error("unhandled error", exc_info=error)
    request_id = getattr(request.state, "request_id", "?")
    return _error(500, "INTERNAL_SERVER_ERROR", f"Internal server error. Quote request id {request_id}.")


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        current = await migrate.current_revision(runtime.engine)
    except Exception as error:
        log.warning("not ready", error=str(error))
        return JSONResponse({"status": "unavailable", "reason": "database unreachable"}, status_code=503)
    head = migrate.head_revision()
    if current != head:
        return JSONResponse(
            {"status": "unavailable", "reason": f"migrations at {current}, code expects {head}"},
            status_code=503,
        )
    return JSONResponse({"status": "ready", "revision": current})


async def metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class RequestLog:
    """Gives each request an id (kept from X-Request-Id when sane), logs and measures it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            # The matched route's template (never its parameters, such as a survey token), so
            # metrics labels stay bounded; "other" for paths no route serves.
            route = getattr(scope.get("route"), "path", "other")
            HTTP_REQUESTS.labels(route, str(status)).inc()
            HTTP_SECONDS.labels(route).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=route,
                status=status,
                duration_ms=round(elapsed * 1000, 1),
            )


def create_app(settings: Settings | None = None, *, worker: bool = False) -> Starlette:
    """The application; with `worker`, it also runs the job worker while it lives."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(resolve_url(settings), settings.database_pool_size)
        messaging.register(settings)
        plans = plan_cache()
        app.state.runtime = Runtime(
            settings,
            engine,
            create_schema(settings, plans),
            JwtVerifier(settings),
            plans,
            persisted=LRUCache(maxsize=PERSISTED_QUERIES),
            signing_key=signing_key(settings),
        )
        stop = asyncio.Event()
        jobs = (
            asyncio.create_task(run_jobs(engine, settings, resolve_url(settings), stop)) if worker else None
        )
        try:
            yield
        finally:
            stop.set()
            if jobs is not None:
                await jobs
            await engine.dispose()

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/surveys/{token}", survey_http.survey, methods=["GET", "POST"]),
            Route(CALLBACK_PATH, connections_http.callback),
            Route("/webhooks/{connector}/{connection}", connections_http.webhook, methods=["POST"]),
            Route("/webhooks/{connector}/{connection}", connections_http.challenge, methods=["GET"]),
        ],
        middleware=[
            Middleware(RequestLog),
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
                expose_headers=["X-Request-Id"],
                max_age=600,
            ),
        ],
        exception_handlers={Exception: unexpected},
        lifespan=lifespan,
    )
