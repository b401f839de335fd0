"""A small HTTP client for the API, for the `fitserve` CLI and for scripts.

It imports neither Flask nor Keras, so the CLI starts at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.datasets import media_type_for_filename
from models.errors import FitserveError

DEFAULT_URL = "http://127.0.0.1:8000"


class ApiError(FitserveError):
    """An error answer from the API, with the HTTP status it came with (0 when
    the API could not be reached or the request was never sent)."""

    code = "api_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    id: str | None = None


class ClientSettings(BaseSettings):
    """What the CLI reads from its environment: `FITSERVE_URL`, `FITSERVE_API_KEY`,
    and `FITSERVE_DATA_DIR`, where `make run` leaves the key it made."""

    model_config = SettingsConfigDict(env_prefix="FITSERVE_", extra="ignore")

    url: str = DEFAULT_URL
    api_key: str | None = None
    data_dir: Path = Path("var")

    def key(self) -> str | None:
        """The API key: FITSERVE_API_KEY, or the one `make run` made when the
        CLI runs beside it."""
        if self.api_key:
            return self.api_key
        path = self.data_dir / "api-key"
        return path.read_text().strip() if path.is_file() else None


class Client:
    def __init__(self, url: str, key: str | None, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()
        if key:
            self.http.headers["Authorization"] = f"Bearer {key}"
        self.timeout = timeout

    def request(self, method: str, path: str, **arguments: Any) -> requests.Response:
        arguments.setdefault("timeout", self.timeout)
        try:
            response = self.http.request(method, f"{self.url}{path}", **arguments)
        except requests.ConnectionError as exc:
            raise ApiError(0, f"Cannot reach the fitserve API at {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _error_message(response))
        return response

    def json(self, method: str, path: str, **arguments: Any) -> Any:
        return self.request(method, path, **arguments).json()

    def upload(self, path: Path, target: str | None = None) -> dict[str, Any]:
        media_type = media_type_for_filename(path.name)
        if media_type is None:
            raise ApiError(0, f"Datasets are .csv, .json or .npz files. Received: {str(path)!r}")
        params = {"target": target} if target else None
        with path.open("rb") as body:
            return dict(self.json("POST", "/v1/datasets", data=body, params=params,
                                  headers={"Content-Type": media_type}))  # fmt: skip

    def submit(
        self, model: str, spec: dict[str, Any], dataset: str, search: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A training job; with `search`, a hyperparameter search over `spec`."""
        body = {"model": model, "spec": spec, "dataset": dataset}
        if search is not None:
            body["search"] = search
        return dict(self.json("POST", "/v1/jobs", json=body))

    def evaluate(self, model: str, dataset: str, version: str | None = None) -> dict[str, Any]:
        """Loss and metrics of `model` on a stored dataset; `version` a number
        or a label (None: the latest version)."""
        path = f"/v1/models/{model}"
        if version is not None:
            path += f"/versions/{version}" if version.isdigit() else f"/labels/{version}"
        return dict(self.json("POST", f"{path}:evaluate", json={"dataset": dataset}))

    def download(self, path: str, output: Path | None, **arguments: Any) -> Path:
        """GET `path` into `output` (default: the name the server gives, in
        the current folder), streamed in blocks; written aside and renamed, so
        an interrupted download leaves no partial file under that name."""
        response = self.request("GET", path, stream=True, **arguments)
        with response:
            if output is None:
                output = Path(_attachment_name(response) or path.rstrip("/").split("/")[-1])
            partial = output.with_name(f".{output.name}.partial")
            try:
                with partial.open("wb") as handle:
                    for block in response.iter_content(chunk_size=1 << 20):
                        handle.write(block)
                partial.replace(output)
            finally:
                partial.unlink(missing_ok=True)
        return output

    def events(self, job_id: str) -> Iterator[Event]:
        """The job's Server-Sent Events, until the stream ends."""
        response = self.request("GET", f"/v1/jobs/{job_id}/events", stream=True,
                                timeout=(10, 120))  # fmt: skip
        with response:
            lines = (line.decode() if isinstance(line, bytes) else line
                     for line in response.iter_lines(decode_unicode=True))  # fmt: skip
            yield from parse_events(lines)


def parse_events(lines: Iterator[str]) -> Iterator[Event]:
    """Server-Sent Events from the stream's lines (the WHATWG format, the parts we send)."""
    name, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield Event(name, json.loads("\n".join(data)), event_id)
            name, event_id, data = "message", None, []
        elif line.startswith(":"):
            continue  # a comment: keep-alive
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


def _attachment_name(response: requests.Response) -> str | None:
    """The file name of a `Content-Disposition: attachment; filename=...`
    answer, without any folder in it (the server's word is not a path)."""
    match = re.search(r'filename="?([^";]+)"?', response.headers.get("Content-Disposition", ""))
    name = Path(match.group(1)).name if match else ""
    return name if name not in ("", ".", "..") else None


def _error_message(response: requests.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:500] or response.reason
