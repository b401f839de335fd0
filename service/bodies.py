"""Reading request bodies: JSON, and datasets from a body or a multipart `file` part."""

from __future__ import annotations

import zlib
from typing import IO, Any

import orjson
from flask import Request
from werkzeug.datastructures import MultiDict
from werkzeug.formparser import FormDataParser

from models.datasets import media_type_for_filename
from models.errors import MalformedBody, UnsupportedMediaType, problem, quoted
from service.errors import PayloadTooLarge

GENERIC_TYPES = ("", "application/octet-stream", "text/plain")
_READ_BYTES = 1 << 20  # read from the connection at a time
# Content-Encoding a body may come in (tritonclient's and kserve's request
# compression): gzip or zlib-wrapped deflate, told apart by zlib itself.
DECODED_ENCODINGS = ("gzip", "x-gzip", "deflate")
ENCODING_LOC: list[str | int] = ["header", "Content-Encoding"]


class NamedPartsParser(FormDataParser):
    """Werkzeug keys a multipart part that has no name as None, and every reader
    that sorts or prints the part names then fails (a 500 for a malformed
    upload). RFC 7578 gives every part a name: a nameless one is keyed ''."""

    def parse(
        self,
        stream: IO[bytes],
        mimetype: str,
        content_length: int | None,
        options: dict[str, str] | None = None,
    ) -> tuple[IO[bytes], MultiDict[str, Any], MultiDict[str, Any]]:
        stream, form, files = super().parse(stream, mimetype, content_length, options)
        return stream, _named(form), _named(files)


def _named(parts: MultiDict[str, Any]) -> MultiDict[str, Any]:
    if None not in parts:
        return parts
    return type(parts)(
        ("" if key is None else key, value) for key, value in parts.items(multi=True)
    )


# Content types without parameters, as clients send them: nothing to parse.
_PLAIN_TYPES = frozenset(("application/json", "text/csv", "application/x-npy",
                          "application/octet-stream", "multipart/form-data"))  # fmt: skip


class FitserveRequest(Request):
    form_data_parser_class = NamedPartsParser

    def _parse_content_type(self) -> None:
        # Werkzeug parses the header with regular expressions on the first
        # ask (`mimetype`): a sizeable part of a one-row request's own time.
        if not hasattr(self, "_parsed_content_type"):
            content_type = self.environ.get("CONTENT_TYPE", "")
            if content_type in _PLAIN_TYPES or not content_type:
                self._parsed_content_type = (content_type, {})
            else:
                super()._parse_content_type()


def dataset_upload(request: Request) -> tuple[bytes | bytearray, str]:
    """(body, media type) of the uploaded dataset."""
    if request.mimetype == "multipart/form-data":
        part = request.files.get("file")
        if part is None:
            raise MalformedBody(
                "A multipart upload needs a 'file' part holding the dataset. "
                f"Received: parts {quoted(sorted(request.files) + sorted(request.form))}"
            )
        media_type = part.mimetype or ""
        if media_type in GENERIC_TYPES:
            media_type = media_type_for_filename(part.filename or "") or media_type
        return part.read(), media_type
    return request_body(request), request.mimetype


def request_body(request: Request) -> bytearray:
    """The whole body, or PayloadTooLarge when it exceeds the upload limit.

    Read into one growing buffer: werkzeug's get_data gathers the pieces and
    then copies them into bytes, twice the body at its peak. The buffer grows
    as bytes arrive (a Content-Length alone reserves nothing), and a bytearray
    is what the parsers read without copying (np.frombuffer, the CSV and NPZ
    readers, orjson).

    Werkzeug limits a body without a Content-Length (chunked) by reading up to
    the limit and stopping there, silently: a cut-off dataset would be stored.
    So when the limit was reached, look one byte further in the raw input.
    """
    stream = request.stream
    length = request.content_length
    body = bytearray()
    while not getattr(stream, "is_exhausted", False):
        wanted = _READ_BYTES if length is None else min(_READ_BYTES, length - len(body))
        chunk = stream.read(wanted) if wanted > 0 else b""
        if not chunk:
            break
        body += chunk
    if length is None and getattr(stream, "is_exhausted", False):
        raw = request.environ["wsgi.input"]
        if raw.read(1):
            drain(raw)
            raise PayloadTooLarge(upload_limit_message(request.max_content_length))
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    return decompressed(body, encoding, request.max_content_length)


def decompressed(body: bytearray, encoding: str, limit: int | None) -> bytearray:
    """A gzip or deflate body, inflated a megabyte at a time and refused (413)
    once it outgrows the upload limit: a small bomb never takes more memory
    than an uncompressed body could."""
    if encoding not in DECODED_ENCODINGS:
        raise UnsupportedMediaType(
            f"Content-Encoding {quoted(encoding)} is not supported: send the body as is, "
            "or gzip or deflate it",
            [problem(ENCODING_LOC, "not identity, gzip or deflate")],
        )
    inflater = zlib.decompressobj(wbits=32 + zlib.MAX_WBITS)  # gzip or zlib header
    inflated = bytearray()
    pending: bytes | bytearray = body
    try:
        while not inflater.eof:
            inflated += inflater.decompress(pending, _READ_BYTES)
            if limit is not None and len(inflated) > limit:
                raise PayloadTooLarge(upload_limit_message(limit) + " (once decompressed)")
            pending = inflater.unconsumed_tail
            if not pending and not inflater.eof:
                inflated += inflater.flush()  # the input is all in: what is left
                break
    except zlib.error as error:
        raise MalformedBody(
            f"The body is not valid {encoding} data: {error}",
            [problem(ENCODING_LOC, f"the body does not decode as {encoding}")],
        ) from None
    if limit is not None and len(inflated) > limit:
        raise PayloadTooLarge(upload_limit_message(limit) + " (once decompressed)")
    if not inflater.eof:
        raise MalformedBody(
            f"The {encoding} body ends before its compressed data does",
            [problem(ENCODING_LOC, f"the body is cut-off {encoding} data")],
        )
    return inflated


def drain(raw: Any, most: int = 2**20) -> None:
    """Read a little of what is left of a refused body, so that a client that
    overshot by a little gets the 413 rather than a connection reset (the
    server closing on unread bytes); a huge body is cut off regardless."""
    drained = 0
    while drained < most and (chunk := raw.read(64 * 1024)):
        drained += len(chunk)


def upload_limit_message(limit: int | None) -> str:
    limit = limit or 0
    return (
        f"The request body is larger than the upload limit of {limit} bytes "
        f"({limit / 2**20:.0f} MiB; setting FITSERVE_LIMITS__MAX_UPLOAD_BYTES)."
    )


def parse_json(raw: bytes | bytearray, where: str = "body") -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(
            f"The {where} is not valid JSON. Received: {exc}",
            details=[problem([where], str(exc))],
        ) from None
