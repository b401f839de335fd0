"""What every command uses: the two consoles (progress and messages on
stderr, results on stdout, so results pipe cleanly), the API client the
options and environment name, and a dataset given by id or uploaded."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from models.ids import is_dataset_id
from service.client import Client, ClientSettings

console = Console(stderr=True)  # progress and messages; results go to stdout
out = Console()


def client_for(arguments: argparse.Namespace) -> Client:
    """The API from --url/--key, else the environment and var/api-key."""
    settings = ClientSettings()
    return Client(arguments.url or settings.url, arguments.key or settings.key())


def dataset_id(client: Client, data: str, target: str | None) -> str:
    """`data` as it is when it is a dataset id (and no such file), else the
    id the file gets when uploaded."""
    if is_dataset_id(data) and not Path(data).exists():
        return data
    record = client.upload(Path(data), target)
    console.print(f"dataset {record['id']}: {record['rows']} rows")
    return str(record["id"])
