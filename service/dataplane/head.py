"""What the data plane reads of a request before its body: the header fields it uses, read in one pass, and the body
itself, bounded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from starlette.types import Receive, Scope

from service.errors import ApiError
from survival.rules import clip

# The header fields the data plane reads; every other one is skipped without decoding.
CONTENT_TYPE: Final[bytes] = b"content-type"
CONTENT_LENGTH: Final[bytes] = b"content-length"
CONTENT_ENCODING: Final[bytes] = b"content-encoding"
ACCEPT: Final[bytes] = b"accept"
V2_HEADER_LENGTH: Final[bytes] = b"inference-header-content-length"
WANTED: Final[frozenset[bytes]] = frozenset({CONTENT_TYPE, CONTENT_LENGTH, CONTENT_ENCODING, ACCEPT, V2_HEADER_LENGTH})
JSON_TYPES: Final[tuple[str, ...]] = ("application/json",)
CSV_TYPES: Final[tuple[str, ...]] = ("text/csv", "application/csv")


@dataclass(frozen=True, slots=True)
class RequestHead:
    """The header fields of one request that the data plane reads (latin-1 text; None when absent)."""

    content_type: str | None
    content_length: str | None
    content_encoding: str | None
    accept: str | None
    v2_header_length: str | None
    repeated: tuple[str, ...]

    @classmethod
    def of(cls, scope: Scope) -> RequestHead:
        """Read the wanted fields of a request's headers in one pass (a repeated one is noted, the first kept)."""
        found: dict[bytes, str] = {}
        repeated: list[str] = []
        for name, value in scope["headers"]:
            if name in WANTED:
                if name in found:
                    repeated.append(name.decode())
                else:
                    found[name] = value.decode("latin-1")
        get = found.get
        return cls(
            get(CONTENT_TYPE),
            get(CONTENT_LENGTH),
            get(CONTENT_ENCODING),
            get(ACCEPT),
            get(V2_HEADER_LENGTH),
            tuple(repeated),
        )

    def media_type(self) -> str:
        """The bare media type of Content-Type, lower-cased ('' when absent)."""
        return media_type(self.content_type)

    def refuse_repeated(self, *names: bytes) -> None:
        """A 400 when one of these fields came twice: two Content-Types (say) must not be settled silently."""
        for name in names:
            text = name.decode()
            if text in self.repeated:
                raise ApiError(400, f"the header field {text} is given more than once")


def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type header, lower-cased ('' when absent)."""
    return (header or "").split(";", 1)[0].strip().lower()


def declared_too_large(head: RequestHead, max_bytes: int) -> None:
    """A 413 before reading anything when Content-Length already says the body is over the limit."""
    declared = head.content_length
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body of {int(declared)} bytes is over the limit of {max_bytes} bytes")


async def read_body(receive: Receive, max_bytes: int) -> bytes:
    """The whole request body; 413 as soon as it grows over `max_bytes` (nothing more is read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # The client hung up mid-body (load generators do at the end of a run): nobody reads the answer, and it
            # is no server error to log with a traceback.
            raise ApiError(400, "the client disconnected before sending the whole body")
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(413, f"request body is over the limit of {max_bytes} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def csv_or_json(head: RequestHead) -> bool:
    """Whether the body is CSV (else JSON), from its Content-Type; 415 for another type or a compressed body."""
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
    return csv_body
