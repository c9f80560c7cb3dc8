"""Content negotiation: pick the best of the offered media types for an Accept header."""

from __future__ import annotations


def preferred(accept: str | None, offered: tuple[str, ...]) -> str:
    """The offered media type the client ranks highest; the first offered when nothing matches better."""
    if not accept or accept == "*/*":  # what most programs send: no preference
        return offered[0]
    best, best_q = offered[0], -1.0
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        for candidate in offered:
            # An exact type beats a wildcard at the same q, as RFC 9110 specifies.
            exact = media == candidate
            if exact or media in ("*/*", candidate.split("/")[0] + "/*"):
                score = q + (0.0001 if exact else 0.0)
                if score > best_q:
                    best, best_q = candidate, score
    return best
