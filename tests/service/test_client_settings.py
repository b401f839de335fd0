"""The CLI's settings: read from FITSERVE_URL, FITSERVE_API_KEY and the key
file `make run` leaves in FITSERVE_DATA_DIR, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.client import DEFAULT_URL, ClientSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("FITSERVE_URL", "FITSERVE_API_KEY", "FITSERVE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no var/api-key here unless a test writes one


def test_defaults_are_the_local_service_without_a_key() -> None:
    settings = ClientSettings()
    assert settings.url == DEFAULT_URL
    assert settings.key() is None


def test_the_environment_names_the_service_and_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITSERVE_URL", "http://api.example:9000")
    monkeypatch.setenv("FITSERVE_API_KEY", "from-env")
    settings = ClientSettings()
    assert (settings.url, settings.key()) == ("http://api.example:9000", "from-env")


def test_the_key_make_run_wrote_is_found_in_the_data_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "api-key").write_text("from-file\n")
    monkeypatch.setenv("FITSERVE_DATA_DIR", str(tmp_path / "elsewhere"))
    assert ClientSettings().key() == "from-file"
    monkeypatch.setenv("FITSERVE_API_KEY", "from-env")
    assert ClientSettings().key() == "from-env"  # the environment wins


def test_the_servers_own_variables_do_not_confuse_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITSERVE_API_KEYS", "a,b")  # the API's list, not the client's key
    monkeypatch.setenv("FITSERVE_LIMITS__MAX_UPLOAD_BYTES", "10")
    assert ClientSettings().key() is None
