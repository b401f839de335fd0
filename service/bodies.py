"""Reading request bodies: JSON, and datasets from a body or a multipart `file` part."""

from __future__ import annotations

import json
from typing import Any

from flask import Request

from models.datasets import media_type_for_filename
from models.errors import MalformedBody, problem

GENERIC_TYPES = ("", "application/octet-stream", "text/plain")


def dataset_upload(request: Request) -> tuple[bytes, str]:
    """(body, media type) of the uploaded dataset."""
    if request.mimetype == "multipart/form-data":
        part = request.files.get("file")
        if part is None:
            raise MalformedBody(
                "A multipart upload needs a 'file' part holding the dataset. "
                f"Received: parts {sorted(request.files) + sorted(request.form)}"
            )
        media_type = part.mimetype or ""
        if media_type in GENERIC_TYPES:
            media_type = media_type_for_filename(part.filename or "") or media_type
        return part.read(), media_type
    return request.get_data(cache=False), request.mimetype


def parse_json(raw: bytes, where: str = "body") -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody(
            f"The {where} is not valid JSON. Received: {exc}",
            details=[problem([where], str(exc))],
        ) from None
