"""The inference core: one request's body read, decoded, predicted and encoded, inline or off the event loop, with
each stage timed, the predictions counted, the request's note written and the monitor fed, in this one place.

A codec (`predict.py`, `v2.py`) knows its protocol's wire format and nothing else; MLServer's `DataPlane` and
KServe's `protocol/dataplane.py` split the work the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar, TypeVarTuple

import anyio.to_thread
from starlette.types import Receive

from service.dataplane.head import RequestHead, declared_too_large, read_body
from service.errors import ApiError
from service.note import RequestNote
from service.pair import ServedPair
from service.state import AppState
from service.store import recording
from service.store.records import Served
from survival.features import FloatArray
from survival.variants import VARIANTS, VariantName

# While a big body is handled in a thread, the event loop waits for the GIL at every wake-up, up to Python's switch
# interval each time; a short one keeps small requests' latency while batches run (bench/bench_mixed.py).
GIL_SWITCH_INTERVAL_S: Final[float] = 0.0005


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A data route a request's path matched: its template (the metrics' and the log's label) and its parameters."""

    template: str
    name: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer's status, its header lines (CRLF-terminated, lower-case names) and its body."""

    status: int
    head: bytes
    body: bytes


class Decoded(Protocol):
    """What a codec's decoder makes of a body: the passengers' raw rows and the models that answer them."""

    @property
    def raw(self) -> FloatArray:
        """(N, 3) Pclass, Fare, Age; NaN for an unknown Fare or Age."""
        ...

    @property
    def names(self) -> tuple[VariantName, ...]:
        """The models that answer, in the answer's order."""
        ...

    @property
    def request_id(self) -> str | None:
        """The request's id when the body names one (the V2 `id`), else None."""
        ...

    @property
    def passenger_ids(self) -> list[str] | None:
        """The passengers' PassengerIds when the body carried them."""
        ...


JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")
Args = TypeVarTuple("Args")
OutT = TypeVar("OutT", bound=Decoded)


class Codec(Protocol[JobT, OutT]):
    """One protocol's wire format: what it checks before the body, how it decodes a body and encodes an answer."""

    protocol: str

    def prepare(self, head: RequestHead, pair: ServedPair, query: bytes, route: RouteMatch) -> JobT:
        """Check what the head, the query and the route say (4xx before any body byte is read); the job's plan."""
        ...

    def decode(self, job: JobT, body: bytes, pair: ServedPair) -> OutT:
        """The body's passengers (4xx naming each problem)."""
        ...

    def encode(
        self, job: JobT, decoded: OutT, pair: ServedPair, probs: dict[VariantName, FloatArray], request_id: str
    ) -> Answer:
        """The answer (`probs` holds the answering models only)."""
        ...


@dataclass(slots=True)
class Computed:
    """What one computation produced, and how long each stage took."""

    answer: Answer
    decoded: Decoded
    request_id: str
    # Every scored model's probabilities: the answering ones, and with the store on the shadow too.
    probs: dict[VariantName, FloatArray]
    seconds: list[float] = field(default_factory=list)


class BusyError(ApiError):
    """A 503 that tells the client when to retry (Retry-After)."""

    retry_after_s: Final[int] = 1


class BatchQueue:
    """The big bodies, read in full, that wait for or are in the batch thread: bounded in count and bytes."""

    def __init__(self, max_count: int, max_bytes: int) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.count = 0
        self.bytes = 0

    @contextmanager
    def place(self, size: int) -> Iterator[None]:
        """Hold a place for a body of `size` bytes while the block runs; a BusyError 503 when there is none."""
        if self.count >= self.max_count or self.bytes + size > self.max_bytes:
            raise BusyError(503, f"{self.count} big requests are already waiting for this worker; retry later")
        self.count += 1
        self.bytes += size
        try:
            yield
        finally:
            self.count -= 1
            self.bytes -= size


class InferenceCore:
    """Runs any codec's requests against the served pair."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        settings = state.settings
        self.max_body_bytes = settings.max_body_bytes
        self.inline_max_bytes = settings.inline_max_bytes
        self.queue = BatchQueue(settings.batch_queue_max, settings.batch_queue_max_bytes)
        # With the store on, both models score every request (one fused network), so the store can compare them.
        self.recording = recording(settings.store_url)

    async def read(self, head: RequestHead, receive: Receive, note: RequestNote) -> bytes:
        """The request's whole body, within MAX_BODY_BYTES (413 from the declared length or as soon as it grows
        over it)."""
        declared_too_large(head, self.max_body_bytes)
        body = await read_body(receive, self.max_body_bytes)
        note.body_read = True
        return body

    async def by_size(self, size: int, work: Callable[[*Args], ResultT], *args: *Args) -> ResultT:
        """`work(*args)` for a body of `size` bytes: on the event loop when small, else in the batch thread.

        All per-row work of a big body runs off the event loop, one big body at a time: a second thread would only
        compete for the GIL with the loop, which keeps serving small requests. The bodies waiting for it are bounded
        (BatchQueue: a 503 with Retry-After past the bound).
        """
        if size <= self.inline_max_bytes:
            return work(*args)
        with self.queue.place(size):
            return await anyio.to_thread.run_sync(work, *args, limiter=self.state.batch_limiter)

    async def infer(
        self,
        codec: Codec[JobT, OutT],
        head: RequestHead,
        receive: Receive,
        query: bytes,
        route: RouteMatch,
        note: RequestNote,
    ) -> Answer:
        """Answer one request: its head checked, its body read (bounded), computed, counted, noted and monitored."""
        pair = self.state.pair.require()  # read once: the whole answer comes from one run
        job = codec.prepare(head, pair, query, route)
        body = await self.read(head, receive, note)
        computed = await self.by_size(len(body), compute, codec, job, body, pair, note.request_id, self.recording)
        decoded = computed.decoded
        raw, names = decoded.raw, decoded.names
        rows = raw.shape[0]
        telemetry = self.state.telemetry
        telemetry.observe_stages(codec.protocol, computed.seconds)
        for name in names:
            telemetry.count_predictions(name, rows)
        note.request_id = computed.request_id
        note.rows, note.models, note.run_id = rows, names, pair.run_id
        lifecycle = self.state.lifecycle
        if lifecycle.monitor is not None:
            lifecycle.monitor.observe(raw)  # only passengers that passed the input rules reach this line
        if lifecycle.store is not None:
            lifecycle.store.record(
                Served(computed.request_id, time.time(), raw, computed.probs, names, pair, decoded.passenger_ids)
            )
        return computed.answer


def compute(
    codec: Codec[JobT, OutT], job: JobT, body: bytes, pair: ServedPair, request_id: str, score_both: bool
) -> Computed:
    """Decode, predict, encode, each stage timed: pure CPU work, safe in a thread."""
    clock = time.perf_counter
    start = clock()
    decoded = codec.decode(job, body, pair)
    request_id = decoded.request_id or request_id
    decoded_at = clock()
    names = decoded.names
    probs = pair.predict(decoded.raw, VARIANTS if score_both else names)
    predicted_at = clock()
    answering = probs if len(names) == len(probs) else {name: probs[name] for name in names}
    answer = codec.encode(job, decoded, pair, answering, request_id)
    encoded_at = clock()
    seconds = [decoded_at - start, predicted_at - decoded_at, encoded_at - predicted_at]
    return Computed(answer, decoded, request_id, probs, seconds)
