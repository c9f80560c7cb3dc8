"""Content negotiation per RFC 9110 section 12.5.1: pick the offered media type an Accept header ranks highest.

Each offered type takes the q-value of the most specific media range that matches it (`text/csv` before
`text/*` before `*/*`); `q=0` means "not this type"; among equal q-values the server's order decides. No Accept
header (or an empty one) accepts anything. A range with a malformed q-value is ignored.
"""

from __future__ import annotations

import re
from typing import Final

from service.errors import ApiError
from survival.rules import clip

_QVALUE: Final[re.Pattern[str]] = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
# A hostile header of thousands of ranges costs no more than this many.
MAX_RANGES: Final[int] = 64


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(",")[:MAX_RANGES]:
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                value = value.strip()
                q = float(value) if _QVALUE.fullmatch(value) else -1.0
        if q >= 0:
            ranges.append((media.lower(), q))
    return ranges


def _quality(ranges: list[tuple[str, float]], offered: str) -> float:
    kind = offered.split("/", 1)[0]
    best_specificity, q = -1, 0.0
    for media, range_q in ranges:
        specificity = 2 if media == offered else 1 if media == f"{kind}/*" else 0 if media == "*/*" else -1
        if specificity > best_specificity:
            best_specificity, q = specificity, range_q
    return q


def acceptable(accept: str | None, offered: tuple[str, ...]) -> str | None:
    """The offered media type the client ranks highest, or None when it accepts none of them."""
    if accept is None or not accept.strip():
        return offered[0]
    ranges = _ranges(accept)
    best, best_q = None, 0.0
    for candidate in offered:
        q = _quality(ranges, candidate)
        if q > best_q:
            best, best_q = candidate, q
    return best


def preferred(accept: str | None, offered: tuple[str, ...]) -> str:
    """The offered media type the client ranks highest; 406 naming the offer when it accepts none."""
    chosen = acceptable(accept, offered)
    if chosen is None:
        shown = clip(accept or "")
        raise ApiError(406, f"Accept {shown!r} allows none of the types this route answers: {', '.join(offered)}")
    return chosen
