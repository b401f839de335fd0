"""How dataset parsing reports what is wrong: problems, errors, and a cap on how many are listed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from models import errors
from models.errors import InvalidDataset, Loc

MAX_PROBLEMS = 20
Problem = dict[str, Any]
Locate = Callable[[tuple[int, ...]], tuple[Loc, str]]  # array index -> (loc, "where" text)


def problem(loc: Loc, what: str, expected: str, received: object) -> Problem:
    return errors.problem(loc, f"{what}: expected {expected}. Received: {received}")


def error(
    cls: type[errors.FitserveError], loc: Loc, what: str, expected: str, received: object
) -> errors.FitserveError:
    detail = problem(loc, what, expected, received)
    return cls(detail["msg"], [detail])


def fail(
    cls: type[errors.FitserveError], loc: Loc, what: str, expected: str, received: object
) -> NoReturn:
    raise error(cls, loc, what, expected, received)


def raise_first(problems: list[Problem]) -> None:
    if problems:
        raise InvalidDataset(problems[0]["msg"], problems[:MAX_PROBLEMS])
