"""Turning pydantic's ValidationError into our 422 with located problems."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from models.errors import ValidationFailed, problem, quoted

ModelT = TypeVar("ModelT", bound=BaseModel)


def validate(model: type[ModelT], data: Any, loc_prefix: tuple[str | int, ...] = ()) -> ModelT:
    """Validate `data` as `model`, or raise ValidationFailed listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise as_validation_failed(exc, loc_prefix) from None


def as_validation_failed(
    exc: ValidationError, loc_prefix: tuple[str | int, ...]
) -> ValidationFailed:
    details = [_detail(error, loc_prefix) for error in exc.errors(include_url=False)]
    first = details[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return ValidationFailed(f"The request is invalid at {where}: {first['msg']}", details=details)


def _detail(error: Any, loc_prefix: tuple[str | int, ...]) -> dict[str, Any]:
    loc = tuple(error["loc"])
    message = str(error["msg"])
    cause = (error.get("ctx") or {}).get("error")
    # Cross-field rules raise an exception that knows which field to blame.
    if cause is not None and hasattr(cause, "loc"):
        loc = loc + tuple(cause.loc)
        message = str(cause)
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    elif error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        # An unknown or missing layer type: blame the discriminator field itself.
        loc = loc + (str(error["ctx"]["discriminator"]).strip("'"),)
    if error["type"] not in ("missing",) and "Received" not in message:
        message = f"{message}. Received: {quoted(error.get('input'))}"
    return problem(list(loc_prefix + _drop_union_tags(loc)), message)


def _drop_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic inserts the discriminator value ('dense') and union member names
    # into loc; the JSON path of the request does not have them.
    return tuple(
        part for part in loc if not (isinstance(part, str) and (part in _UNION_TAGS or "[" in part))
    )


_UNION_TAGS = {
    "dense", "dropout", "flatten", "batch_normalization", "normalization", "Optimizer",
    "optimizer_name",
}  # fmt: skip
