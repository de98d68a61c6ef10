"""The JSON answers and request bodies of the web API, shared by the routes (`_app`) and the streams (`_streams`)."""
from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ._api import HttpError, dumps, status_of

MAX_BODY = 64 * 1024


def json_response(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json",
                    headers={"cache-control": "no-store"})


def error_response(exc: BaseException) -> Response:
    status, message = status_of(exc)
    return json_response({"error": message}, status)


async def read_json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HttpError(413, f"the request body must be at most {MAX_BODY} bytes, got {len(body)}")
    try:
        return json.loads(body or b"{}")
    except ValueError as exc:
        raise HttpError(400, f"the request body is not JSON: {exc}") from None
