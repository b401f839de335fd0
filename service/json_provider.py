"""Flask's JSON through orjson: several times faster than the standard library
both ways, and it writes numpy arrays directly (a 100,000-row prediction is
serialised without building 100,000 Python lists first)."""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import JSONProvider

OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class OrjsonProvider(JSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=OPTIONS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


def dump_bytes(obj: Any) -> bytes:
    return orjson.dumps(obj, option=OPTIONS)
