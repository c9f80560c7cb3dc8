"""POST /feedback: the real outcomes of served predictions, recorded in the store, all of a request's or none.

Answered by the data plane like /predict (same keys, bounds, strictness and error body); the body is parsed on the
event loop when small and in a thread when not, and the database is only ever reached from a thread.
"""

from __future__ import annotations

from typing import Final

import anyio.to_thread
from starlette.types import Receive

from service.dataplane.core import Answer, RouteMatch
from service.dataplane.feedback_input import parse_csv_outcomes, parse_json_outcomes
from service.dataplane.head import RequestHead, declared_too_large, read_body
from service.errors import ApiError
from service.note import RequestNote
from service.parsing import CSV_TYPES, JSON_TYPES
from service.routes.feedback import FeedbackAnswer
from service.state import AppState
from service.store.records import Outcome
from survival.rules import clip

FEEDBACK_ROUTE: Final[RouteMatch] = RouteMatch("/feedback")
JSON_HEAD: Final[bytes] = b"content-type: application/json\r\n"


def parse_outcomes(body: bytes, csv_body: bool, max_outcomes: int) -> list[Outcome]:
    """The body's outcomes (CSV or JSON)."""
    return parse_csv_outcomes(body, max_outcomes) if csv_body else parse_json_outcomes(body, max_outcomes)


class FeedbackHandler:
    """Answers POST /feedback for one app."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        settings = state.settings
        self.max_body_bytes = settings.max_body_bytes
        self.inline_max_bytes = settings.inline_max_bytes
        self.max_outcomes = settings.max_feedback_outcomes

    async def handle(self, head: RequestHead, receive: Receive, query: bytes, note: RequestNote) -> Answer:
        """Check the head, read the body (bounded), parse it, record the outcomes; the answer."""
        store = self.state.lifecycle.store
        if store is None:
            raise ApiError(404, "POST /feedback is off: this service records no predictions (STORE_URL=none)")
        if query:
            raise ApiError(422, "POST /feedback takes no query parameters")
        head.refuse_repeated(b"content-type")
        kind = head.media_type()
        if kind in CSV_TYPES:
            csv_body = True
        elif kind in JSON_TYPES or kind.endswith("+json"):
            csv_body = False
        else:
            shown = clip(kind) if kind else "none"
            raise ApiError(415, f"Content-Type {shown} is not supported; send application/json or text/csv")
        encoding = (head.content_encoding or "identity").strip().lower()
        if encoding != "identity":
            raise ApiError(415, f"Content-Encoding {clip(encoding)} is not supported; send the body uncompressed")
        declared_too_large(head, self.max_body_bytes)
        body = await read_body(receive, self.max_body_bytes)
        note.body_read = True
        if len(body) > self.inline_max_bytes:
            given = await anyio.to_thread.run_sync(
                parse_outcomes, body, csv_body, self.max_outcomes, limiter=self.state.batch_limiter
            )
        else:
            given = parse_outcomes(body, csv_body, self.max_outcomes)
        recorded = await anyio.to_thread.run_sync(store.feedback, given, limiter=self.state.store_limiter)
        note.rows = recorded.outcomes
        answer = FeedbackAnswer(
            outcomes=recorded.outcomes, labelled=recorded.labelled, already_labelled=recorded.already_labelled
        )
        return Answer(200, JSON_HEAD, answer.model_dump_json().encode())
