"""The base of every request model (`StrictModel`), and turning pydantic's
ValidationError into our 422 with located problems."""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from models.errors import ValidationFailed, problem, quoted

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def validate(model: type[ModelT], data: Any, loc_prefix: tuple[str | int, ...] = ()) -> ModelT:
    """Validate `data` as `model`, or raise ValidationFailed listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise as_validation_failed(exc, model, loc_prefix) from None


def as_validation_failed(
    exc: ValidationError, model: type[BaseModel], loc_prefix: tuple[str | int, ...]
) -> ValidationFailed:
    """`exc`, raised validating `model`, as a ValidationFailed listing every problem."""
    tags = _union_tags(model)
    details = [_detail(error, tags, loc_prefix) for error in exc.errors(include_url=False)]
    first = details[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return ValidationFailed(f"The request is invalid at {where}: {first['msg']}", details=details)


def _detail(error: Any, tags: frozenset[str], loc_prefix: tuple[str | int, ...]) -> dict[str, Any]:
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
    # pydantic inserts the discriminator value ('dense') and union member names
    # into loc; the JSON path of the request does not have them.
    kept = (part for part in loc if not (isinstance(part, str) and (part in tags or "[" in part)))
    return problem(list(loc_prefix + tuple(kept)), message)


@cache
def _union_tags(model: type[BaseModel]) -> frozenset[str]:
    """The tags of every discriminated union inside `model`, read off its core schema."""
    tags: set[str] = set()
    pending: list[Any] = [model.__pydantic_core_schema__]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("type") == "tagged-union":
                tags.update(str(tag) for tag in node["choices"])
            pending.extend(node.values())
        elif isinstance(node, list | tuple):
            pending.extend(node)
    return frozenset(tags)
