"""Reading query parameters."""

from __future__ import annotations

from flask import request

from models.errors import ValidationFailed, problem, quoted


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """Query parameter `name`, an integer from `low` to `high`; `default` when absent."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    # ASCII digits only ('²'.isdigit() is true, and int() refuses it), and few of
    # them: int() refuses more than 4,300 digits.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18) or not low <= int(raw) <= high:
        raise ValidationFailed(
            f"{name} must be an integer from {low} to {high}. Received: {quoted(raw)}",
            details=[problem(["query", name], "out of range")],
        )
    return int(raw)
