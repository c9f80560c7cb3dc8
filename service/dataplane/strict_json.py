"""The one strict JSON loader of every request body: UTF-8 only, no duplicate keys, bounded depth and digits.

NaN and Infinity are refused unless the protocol allows them (`allow_nan`: V2 clients write an unknown Age as
NaN, as Python's json and tritonclient do); every failure is a 400 starting "malformed JSON".
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from typing import Any, Final, NoReturn

from service.errors import ApiError
from survival.rules import echo

# Byte order marks of the encodings json.loads would otherwise guess from the first bytes.
NON_UTF8_MARKS: Final[tuple[tuple[bytes, str], ...]] = (
    (codecs.BOM_UTF8, "starts with a UTF-8 byte order mark; send UTF-8 without one"),
    (codecs.BOM_UTF32_LE, "is UTF-32 (it starts with a byte order mark); send UTF-8"),
    (codecs.BOM_UTF32_BE, "is UTF-32 (it starts with a byte order mark); send UTF-8"),
    (codecs.BOM_UTF16_LE, "is UTF-16 (it starts with a byte order mark); send UTF-8"),
    (codecs.BOM_UTF16_BE, "is UTF-16 (it starts with a byte order mark); send UTF-8"),
)


# A passenger object has at most this many keys that are read or ignored (Kaggle's rows have 12): a body of N
# passengers has no more than N times this many, plus a few for its wrapper.
KEYS_PER_PASSENGER: Final[int] = 16
# Most keys in one object, checked on the body's skeleton of braces and colons.
MAX_OBJECT_KEYS: Final[int] = 1_000
# Every byte but those of the skeleton.
_NOT_SKELETON: Final[bytes] = bytes(b for b in range(256) if b not in b"{}:")
_LONG_OBJECT: Final[re.Pattern[bytes]] = re.compile(b":{%d}" % (MAX_OBJECT_KEYS + 1))


def check_keys(body: bytes, max_keys: int, what: str = "body") -> None:
    """A 400 before parsing when the body holds more keys than `max_keys`, or an object more than MAX_OBJECT_KEYS.

    json.loads holds the interpreter lock while it reads one object, however many keys it has: a body that is one
    object of hundreds of thousands of keys would stop the event loop for most of a second, even from the batch
    thread. Counting colons (and, past a thousand, the longest run of them between braces) costs a scan of the body.
    """
    colons = body.count(b":")
    if colons <= MAX_OBJECT_KEYS:
        return
    if colons > max_keys:
        malformed(f"the {what} holds {colons} keys, over the limit of {max_keys}")
    if _LONG_OBJECT.search(body.translate(None, _NOT_SKELETON)):
        malformed(f"an object in the {what} has over {MAX_OBJECT_KEYS} keys")


def malformed(problem: str) -> NoReturn:
    """A 400 for a body that is not the JSON this service reads."""
    raise ApiError(400, f"malformed JSON: {problem}")


def _reject_constant(name: str) -> NoReturn:
    malformed(f"{name} is not a number JSON allows")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        malformed(f"duplicate key {echo(key)} in an object")
    return obj


# Built once: json.loads with hooks builds a new decoder for every call. Sharing one between threads is what
# json.loads itself does with its default decoder.
_STRICT_DECODER: Final[json.JSONDecoder] = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
)
_NAN_DECODER: Final[json.JSONDecoder] = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def json_text(body: bytes, what: str = "body") -> str:
    """The body as text: UTF-8 without a byte order mark, else a 400 naming the problem."""
    for mark, problem in NON_UTF8_MARKS:
        if body.startswith(mark):
            malformed(f"the {what} {problem}")
    if b"\x00" in body[:4]:
        # JSON text starts with an ASCII character; NUL bytes around it mean UTF-16 or UTF-32.
        malformed(f"the {what} looks like UTF-16 or UTF-32 (NUL bytes); send UTF-8")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        malformed(f"the {what} is not UTF-8 (invalid byte at offset {exc.start})")


def loads(body: bytes, *, allow_nan: bool, max_keys: int, what: str = "body") -> Any:
    """The decoded JSON value of `body` (`what` names it in errors: "body", "request"), at most `max_keys` keys."""
    check_keys(body, max_keys, what)
    text = json_text(body, what)
    if not text.strip():
        malformed(f"the {what} is empty")
    try:
        return (_NAN_DECODER if allow_nan else _STRICT_DECODER).decode(text)
    except json.JSONDecodeError as exc:
        malformed(str(exc))
    except RecursionError:
        malformed("nested too deeply")
    except ValueError:
        # int() refuses integer literals longer than sys.get_int_max_str_digits() (a DoS guard), unwrapped by json.
        malformed(f"a number has more than {sys.get_int_max_str_digits()} digits")
