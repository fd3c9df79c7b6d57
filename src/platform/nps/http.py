"""The public survey endpoint: the link's token is the respondent's only credential.

GET /surveys/{token}?lang=en  -> the branded form as JSON, for single-page clients
POST /surveys/{token}          -> {"score": 0-10, "comment": "...", "answers": [{"key", "value"}]}

Texts are returned and stored as given: clients must render them escaped (docs/nps.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse

from brandloop import responses
from brandloop.db.session import tenant_transaction
from brandloop.nps import links, service
from brandloop.nps.service import RespondError
from brandloop.tenancy.models import Tenant

MAX_BODY = 16_000
STATUS = {"NOT_FOUND": 404, "ALREADY_ANSWERED": 409, "EXPIRED": 410, "INVALID": 400}


def _language(request: Request, available: dict[str, str]) -> str:
    wanted = [request.query_params.get("lang", "")]
    wanted += [part.split(";")[0].strip() for part in request.headers.get("accept-language", "").split(",")]
    for lang in wanted:
        if lang in available:
            return lang
        prefix = next((k for k in available if lang and k.split("-")[0] == lang.split("-")[0]), None)
        if prefix:
            return prefix
    return "en" if "en" in available else next(iter(available))


async def survey(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    engine: AsyncEngine = runtime.engine
    try:
        claims = links.read(runtime.signing_key, request.path_params["token"])
    except links.BadLink:
        return responses.error(401, "INVALID_LINK", "This survey link is not valid.")
    if claims.expires_at <= datetime.now(UTC):
        return responses.error(410, "EXPIRED", "This survey link has expired.")
    body: dict[str, Any] = {}
    if request.method == "POST":
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return responses.error(413, "TOO_LARGE", f"Send at most {MAX_BODY} bytes.")
        try:
            body = json.loads(raw)
        except ValueError:
            return responses.error(400, "INVALID", "Send the answer as a JSON object.")
        if not isinstance(body, dict) or not set(body) <= {"score", "comment", "answers"}:
            return responses.error(400, "INVALID", "Send {score, comment, answers}.")
    try:
        async with tenant_transaction(engine, claims.tenant_id) as session:
            tenant = await session.get(Tenant, claims.tenant_id)
            if tenant is None or tenant.status != "active":
                return responses.error(404, "NOT_FOUND", "This survey link is not valid.")
            if request.method == "GET":
                return _form(request, await service.form(session, claims.invitation_id, tenant.name))
            await service.respond(
                session,
                claims.invitation_id,
                score=body.get("score"),
                comment=body.get("comment"),
                answers=body.get("answers"),
            )
    except RespondError as error:
        return responses.error(STATUS[error.code], error.code, str(error))
    return JSONResponse({"thanks": True}, status_code=201)


def _form(request: Request, found: service.Form) -> JSONResponse:
    survey, invitation = found.survey, found.invitation
    lang = _language(request, survey.question)
    pick = lambda texts: texts.get(lang) or texts.get("en") or next(iter(texts.values()))  # noqa: E731
    return JSONResponse(
        {
            "brand": found.brand,
            "language": lang,
            "languages": sorted(survey.question),
            "question": pick(survey.question),
            "scale": {"min": 0, "max": 10},
            "comment": pick(survey.comment_prompt) if survey.comment_prompt else None,
            "followUps": [
                {
                    "key": f["key"],
                    "kind": f["kind"],
                    "prompt": pick(f["prompt"]),
                    "options": f.get("options", []),
                }
                for f in survey.follow_ups
            ],
            "answered": invitation.status == "responded",
            "expiresAt": invitation.expires_at.isoformat(),
        }
    )
