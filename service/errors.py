"""One error format for every failure: stable 4xx messages for the client's mistakes, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.schemas import ErrorItem, ErrorResponse

logger = logging.getLogger("service")
# Enough to fix a batch; a 10,000-row batch with every row wrong should not echo 10,000 messages.
MAX_ERRORS_LISTED = 20


class ApiError(Exception):
    """A request problem with its HTTP status, a summary and the individual problems."""

    def __init__(self, status: int, detail: str, errors: list[ErrorItem] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


def error_content(detail: str, errors: list[ErrorItem] | None = None) -> dict[str, Any]:
    """The body every error uses, as JSON-ready data (at most MAX_ERRORS_LISTED problems)."""
    return ErrorResponse(detail=detail, errors=(errors or [])[:MAX_ERRORS_LISTED]).model_dump(exclude_none=True)


def error_response(status: int, detail: str, errors: list[ErrorItem] | None = None) -> JSONResponse:
    """The JSON body every error uses."""
    return JSONResponse(status_code=status, content=error_content(detail, errors))


def clean_message(error: Any) -> str:
    """Pydantic's message without its 'Value error, ' prefix, and plainer words for unknown fields."""
    if error["type"] == "extra_forbidden":
        return "unknown field (accepted: pclass, fare, age, or Kaggle's Pclass, Fare, Age)"
    if error["type"] == "missing":
        return "field required"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def items_from_validation(errors: list[Any], **where: Any) -> list[ErrorItem]:
    """Turn pydantic error dicts into ErrorItems naming the field (and the batch index when there is one)."""
    items = []
    for error in errors:
        loc = [p for p in error["loc"] if p not in ("body", "query", "path")]
        index = next((p for p in loc if isinstance(p, int)), None)
        names = [str(p) for p in loc if not isinstance(p, int)]
        field = names[-1] if names else None
        items.append(ErrorItem(field=field, index=index, message=clean_message(error), **where))
    return items


def summary(items: list[ErrorItem], *, stopped: bool = False) -> str:
    """A one-line summary naming the first problem (`stopped`: checking stopped at MAX_ERRORS_LISTED problems)."""
    if not items:
        return "invalid request"
    first = items[0]
    where = []
    if first.index is not None:
        where.append(f"passengers[{first.index}]")
    if first.row is not None:
        where.append(f"row {first.row}")
    if first.passenger_id:
        where.append(f"(PassengerId {first.passenger_id})")
    prefix = f"{' '.join(where)}: " if where else ""
    field = f"{first.field}: " if first.field else ""
    more = f" (and {len(items) - 1} more problem(s))" if len(items) > 1 else ""
    if stopped:
        more = f" (and more problems: checking stopped at {MAX_ERRORS_LISTED})"
    return f"{prefix}{field}{first.message}{more}"


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception to the one error format."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.detail, exc.errors)

    @app.exception_handler(RequestValidationError)
    async def request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        items = items_from_validation(list(exc.errors()))
        return error_response(422, summary(items), items)

    @app.exception_handler(ValidationError)
    async def validation(_: Request, exc: ValidationError) -> JSONResponse:
        items = items_from_validation(list(exc.errors()))
        return error_response(422, summary(items), items)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = error_response(exc.status_code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged in full for the operator; the client learns nothing about the internals.
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error")
