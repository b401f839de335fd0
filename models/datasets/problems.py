"""How dataset parsing reports what is wrong: problems, errors, and a cap on how many are listed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from models import errors
from models.errors import InvalidDataset, Loc

MAX_PROBLEMS = 20
MAX_RECEIVED_ITEMS = 10  # of a received row or header, listed in a message
MAX_RECEIVED_CHARS = 300
Problem = dict[str, Any]
Locate = Callable[[tuple[int, ...]], tuple[Loc, str]]  # array index -> (loc, "where" text)


def report(loc: Loc, what: str, expected: str, received: object) -> Problem:
    """A problem whose message says what happened, what was expected and what came."""
    return errors.problem(loc, f"{what}: expected {expected}. Received: {preview(received)}")


def preview(received: object) -> str:
    """What was received, cut short: a hostile header or row of a million
    fields would otherwise come back as a multi-megabyte error body."""
    if isinstance(received, list) and len(received) > MAX_RECEIVED_ITEMS:
        head = ", ".join(map(repr, received[:MAX_RECEIVED_ITEMS]))
        return f"[{head}, ... ({len(received):,} items)]"
    text = str(received)
    if len(text) <= MAX_RECEIVED_CHARS:
        return text
    return f"{text[:MAX_RECEIVED_CHARS]}... ({len(text):,} characters)"


def error(
    cls: type[errors.FitserveError], loc: Loc, what: str, expected: str, received: object,
    argument: str | None = None,
) -> errors.FitserveError:  # fmt: skip
    """`argument`: the input `loc` points into, when it is not the body parsed."""
    detail = report(loc, what, expected, received)
    return cls(detail["msg"], [detail], argument=argument)


def fail(
    cls: type[errors.FitserveError], loc: Loc, what: str, expected: str, received: object,
    argument: str | None = None,
) -> NoReturn:  # fmt: skip
    raise error(cls, loc, what, expected, received, argument)


def raise_first(problems: list[Problem]) -> None:
    if problems:
        raise InvalidDataset(problems[0]["msg"], problems[:MAX_PROBLEMS])
