"""Backlot's HTTP API and review page (FastAPI). `backlot serve` runs it with uvicorn.

    from backlot.services.api import create_app
    app = create_app()            # settings from the environment, like the CLI
"""

from backlot.services.api.app import create_app
from backlot.services.api.config import ApiSettings

__all__ = ["ApiSettings", "create_app"]
