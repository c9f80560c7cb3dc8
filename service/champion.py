"""Which model answers /predict: both (the default), or a champion whose rival still scores every request as the
shadow. Set by ANSWER at start, switched at run time by PUT /admin/champion through the store."""

from __future__ import annotations

from typing import Literal, get_args

from survival.variants import VARIANTS, VariantName

AnswerMode = Literal["both", "batchnorm", "plain"]


class Champion:
    """The models /predict answers with when the request names none; one reference, read once per request."""

    def __init__(self, mode: AnswerMode) -> None:
        self.mode: AnswerMode = mode
        self.names: tuple[VariantName, ...] = names_of(mode)

    def set(self, mode: AnswerMode) -> bool:
        """Answer with `mode` from now on; whether it changed."""
        if mode == self.mode:
            return False
        # Two assignments, each atomic: a request reads `names` once, so it sees one mode or the other.
        self.names, self.mode = names_of(mode), mode
        return True


def names_of(mode: AnswerMode) -> tuple[VariantName, ...]:
    """The models a mode answers with."""
    return VARIANTS if mode == "both" else (mode,)


def answer_mode(text: str) -> AnswerMode | None:
    """A stored mode, checked (None for a value this code does not know)."""
    for mode in get_args(AnswerMode):
        if text == mode:
            return mode  # type: ignore[no-any-return]
    return None
