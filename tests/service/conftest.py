from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from models.settings import Settings
from service.app import create_app


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
