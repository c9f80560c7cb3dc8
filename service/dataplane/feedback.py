"""POST /feedback: the real outcomes of served predictions, recorded in the store, all of a request's or none.

Answered by the data plane like /predict (same keys, bounds, strictness and error body); the body is parsed on the
event loop when small and in a thread when not, and the database is only ever reached from a thread.
"""

from __future__ import annotations

from typing import Final

import anyio.to_thread
from starlette.types import Receive

from service.dataplane.core import Answer, InferenceCore, RouteMatch
from service.dataplane.feedback_input import parse_csv_outcomes, parse_json_outcomes
from service.dataplane.head import RequestHead, csv_or_json
from service.errors import ApiError
from service.note import RequestNote
from service.routes.feedback import FeedbackAnswer
from service.state import AppState
from service.store.records import Outcome

FEEDBACK_ROUTE: Final[RouteMatch] = RouteMatch("/feedback")
JSON_HEAD: Final[bytes] = b"content-type: application/json\r\n"


def parse_outcomes(body: bytes, csv_body: bool, max_outcomes: int) -> list[Outcome]:
    """The body's outcomes (CSV or JSON)."""
    return parse_csv_outcomes(body, max_outcomes) if csv_body else parse_json_outcomes(body, max_outcomes)


class FeedbackHandler:
    """Answers POST /feedback for one app."""

    def __init__(self, state: AppState, core: InferenceCore) -> None:
        self.state = state
        self.core = core  # its bounded body reading and batch thread
        self.max_outcomes = state.settings.max_feedback_outcomes

    async def handle(self, head: RequestHead, receive: Receive, query: bytes, note: RequestNote) -> Answer:
        """Check the head, read the body (bounded), parse it, record the outcomes; the answer."""
        store = self.state.lifecycle.store
        if store is None:
            raise ApiError(404, "POST /feedback is off: this service records no predictions (STORE_URL=none)")
        if query:
            raise ApiError(422, "POST /feedback takes no query parameters")
        csv_body = csv_or_json(head)
        body = await self.core.read(head, receive, note)
        given = await self.core.by_size(len(body), parse_outcomes, body, csv_body, self.max_outcomes)
        recorded = await anyio.to_thread.run_sync(store.feedback, given, limiter=self.state.store_limiter)
        note.rows = recorded.outcomes
        answer = FeedbackAnswer(
            outcomes=recorded.outcomes, labelled=recorded.labelled, already_labelled=recorded.already_labelled
        )
        return Answer(200, JSON_HEAD, answer.model_dump_json().encode())
