"""The Flask class the service runs, trimmed of per-request work that a
one-row `:predict` notices:

- A response held in memory goes back to the server as a one-item list,
  which granian writes in one call, instead of werkzeug's iterator, which it
  pulls an item at a time across the GIL. Streamed bodies, bodies with
  `call_on_close` callbacks, and HEAD, 1xx, 204 and 304 answers keep
  werkzeug's own path.
- A small JSON `:predict` that succeeds is answered before Flask sees it
  (service.fast_predict); every other request, and every error, is Flask's.
- `ensure_sync`'s `inspect.iscoroutinefunction` answer, asked of every hook
  and view on every request, is remembered: it never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response

from service.bodies import FitserveRequest

# Functions whose `ensure_sync` answer is remembered: the app's hooks and
# views (a few dozen); a function made per request would not be (bounded).
_MAX_REMEMBERED = 1024


class FitserveResponse(Response):
    def get_app_iter(self, environ: dict[str, Any]) -> Iterable[bytes]:
        status = self.status_code
        if (
            self.is_sequence
            and not self.direct_passthrough
            and not self._on_close
            and environ["REQUEST_METHOD"] != "HEAD"
            and not (100 <= status < 200 or status in (204, 304))
        ):
            return [b"".join(self.iter_encoded())]
        return super().get_app_iter(environ)


class FitserveFlask(Flask):
    request_class = FitserveRequest
    response_class = FitserveResponse

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}
        # service.fast_predict, once the app's parts are in (service.app).
        self.fast_lane: Callable[..., list[bytes] | None] | None = None

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        fast_lane = self.fast_lane
        if fast_lane is not None:
            answer = fast_lane(environ, start_response)
            if answer is not None:
                return answer
        return super().wsgi_app(environ, start_response)

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._synced[func]
        except (KeyError, TypeError):  # TypeError: not hashable
            synced = super().ensure_sync(func)
        if len(self._synced) < _MAX_REMEMBERED:
            try:
                self._synced[func] = synced
            except TypeError:
                pass
        return synced
