"""The patterns of every id and name that reaches a path, a key or a URL,
defined once. Match them whole (`fullmatch`): a `$` also matches before a
trailing newline, and 'iris\\n' is no model name."""

from __future__ import annotations

import re
import uuid

JOB_ID = re.compile(r"[0-9a-f]{32}")  # a UUID4's hex
DATASET_ID = re.compile(r"[0-9a-f]{24}")  # the first 24 hex digits of a SHA-256
MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
VERSION = re.compile(r"[1-9][0-9]{0,17}")  # a published version's folder name
# A version label (TF Serving's): starts with a letter, so never reads as a version.
LABEL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def anchored(pattern: re.Pattern[str]) -> str:
    """The pattern for validators that search rather than match whole
    (JSON Schema, pydantic): `^...$`."""
    return f"^{pattern.pattern}$"


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: object) -> bool:
    return isinstance(value, str) and JOB_ID.fullmatch(value) is not None


def is_dataset_id(value: object) -> bool:
    return isinstance(value, str) and DATASET_ID.fullmatch(value) is not None


def is_model_name(value: object) -> bool:
    return isinstance(value, str) and MODEL_NAME.fullmatch(value) is not None


def is_label_name(value: object) -> bool:
    return isinstance(value, str) and LABEL_NAME.fullmatch(value) is not None
