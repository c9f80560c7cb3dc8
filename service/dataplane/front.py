"""The data routes answered before FastAPI's router: POST /predict, the V2 infer routes and POST /feedback.

FastAPI keeps the documentation of these routes (their OpenAPI entries), the docs, the dashboard and the control
routes; a prediction skips its middleware stack, routing and dependency resolution, which cost more per request
than parsing, both models and the answer together (bench/bench_dataplane.py). The rules are the same: API keys
(service/auth.py), bounded bodies, one error format per protocol, never a traceback to the client.
"""

from __future__ import annotations

import json
import logging
from typing import Final

from starlette.types import Receive, Scope, Send

from service.auth import CHALLENGE, refusal
from service.dataplane.core import Answer, BusyError, InferenceCore, RouteMatch
from service.dataplane.feedback import FEEDBACK_ROUTE, FeedbackHandler
from service.dataplane.head import RequestHead
from service.dataplane.predict import PredictCodec
from service.dataplane.v2 import V2Codec
from service.dataplane.v2 import error_body as v2_error_body
from service.errors import ApiError, error_content
from service.note import RequestNote
from service.server.one_write import RESPOND
from service.state import AppState

logger = logging.getLogger("service")
PREDICT_ROUTE: Final[RouteMatch] = RouteMatch("/predict")
V2_PREFIX, V2_SUFFIX = "/v2/models/", "/infer"
V2_INFER: Final[str] = "/v2/models/{name}/infer"
V2_VERSION_INFER: Final[str] = "/v2/models/{name}/versions/{version}/infer"
ERROR_HEAD: Final[bytes] = b"content-type: application/json\r\n"
# Every data-plane answer: its id, and no content sniffing by a browser.
COMMON_HEAD: Final[bytes] = b"x-content-type-options: nosniff\r\nx-request-id: "


def match(path: str) -> RouteMatch | None:
    """The data route a path names, or None (FastAPI answers it)."""
    if path == PREDICT_ROUTE.template:
        return PREDICT_ROUTE
    if path == FEEDBACK_ROUTE.template:
        return FEEDBACK_ROUTE
    if path.startswith(V2_PREFIX) and path.endswith(V2_SUFFIX):
        parts = path[len(V2_PREFIX) : -len(V2_SUFFIX)].split("/")
        if len(parts) == 1 and parts[0]:
            return RouteMatch(V2_INFER, parts[0])
        if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
            return RouteMatch(V2_VERSION_INFER, parts[0], parts[2])
    return None


def api_error_body(exc: ApiError) -> bytes:
    """The API's error body (ASCII JSON: a lone surrogate a client sent is escaped, never a failure)."""
    return json.dumps(error_content(exc.detail, exc.errors)).encode()


class DataPlane:
    """Answers the data routes of one app."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.core = InferenceCore(state)
        self.predict = PredictCodec(state.settings.max_batch_size, state.champion)
        self.v2 = V2Codec(state.settings.max_batch_size)
        self.feedback = FeedbackHandler(state, self.core)
        self.check_keys = state.keys.enabled

    async def serve(self, scope: Scope, receive: Receive, send: Send, route: RouteMatch, note: RequestNote) -> None:
        """Answer one request on a data route."""
        is_v2 = route is not PREDICT_ROUTE and route is not FEEDBACK_ROUTE
        extra = b""
        note.body_read = False  # until the core has read it all
        try:
            if scope["method"] != "POST":
                extra = b"allow: POST\r\n"
                raise ApiError(405, "Method Not Allowed")
            if self.check_keys:
                refused = refusal(self.state.keys, scope, self.state.settings.metrics_need_key)
                if refused is not None:
                    self.state.telemetry.count_auth_failure(refused.reason)
                    if refused.status == 401:
                        extra = f"{CHALLENGE[0].lower()}: {CHALLENGE[1]}\r\n".encode()
                    raise ApiError(refused.status, refused.detail)
            head = RequestHead.of(scope)
            query = scope["query_string"]
            if is_v2:
                answer = await self.core.infer(self.v2, head, receive, query, route, note)
            elif route is FEEDBACK_ROUTE:
                answer = await self.feedback.handle(head, receive, query, note)
            else:
                answer = await self.core.infer(self.predict, head, receive, query, route, note)
        except ApiError as exc:
            if isinstance(exc, BusyError):
                extra += b"retry-after: %d\r\n" % exc.retry_after_s
            answer = Answer(exc.status, ERROR_HEAD + extra, v2_error_body(exc) if is_v2 else api_error_body(exc))
        except Exception:
            # Logged in full for the operator; the client learns nothing about the internals.
            logger.exception("unhandled error on %s %s", scope["method"], route.template)
            content = {"error": "internal error"} if is_v2 else {"detail": "internal error", "errors": []}
            answer = Answer(500, ERROR_HEAD, json.dumps(content).encode())
        note.status = answer.status
        # A refusal before the whole body arrived: the rest of it is not read, the connection is closed after.
        await send_answer(scope, send, answer, note.request_id, close=not note.body_read)


async def send_answer(scope: Scope, send: Send, answer: Answer, request_id: str, *, close: bool) -> None:
    """Send an answer: in one call and one write where the server offers it (python -m service), else as ASGI."""
    head = answer.head + COMMON_HEAD + request_id.encode() + b"\r\n"
    extensions = scope.get("extensions")
    respond = extensions.get(RESPOND) if extensions else None
    if respond is not None:
        await respond(answer.status, head, answer.body, close)
        return
    headers = [tuple(line.split(b": ", 1)) for line in head.split(b"\r\n") if line]
    headers.append((b"content-length", str(len(answer.body)).encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
