"""Provenance fixtures: the generation tests' tiny model and production, and a project signer."""

from __future__ import annotations

import pytest

import backlot
from backlot import provenance
from tests.generation.conftest import make_art, production, tiny_folder  # noqa: F401 - fixtures reused

__all__ = ["make_art"]


@pytest.fixture
def signed_production(production, env):
    """The production with a local CA and signer (`provenance init` core) used by project `film`."""
    folder = env / "signers" / "film"
    with backlot.session() as s:
        info = provenance.init_signer(folder, organisation="Test Studio")
        provenance.use_signer(s, "film", folder)
    return {**production, "signer": folder, "signer_info": info}


def api_client(role: str = "viewer"):
    """The real HTTP app (in-process ASGI) on the test database and store, and a token of `role`."""
    from fastapi.testclient import TestClient

    from backlot import access
    from backlot.config import load_settings
    from backlot.services.api import ApiSettings, create_app
    from backlot.services.api.config import WebhookSettings

    with backlot.session() as s:
        token = access.create_token(s, "film", role, name=f"{role}-bot").secret
    app = create_app(ApiSettings(backlot=load_settings(), webhooks=WebhookSettings(enabled=False)))
    return TestClient(app, headers={"Authorization": f"Bearer {token}"}), token
