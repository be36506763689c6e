"""The complete schema: importing this registers every table on `Base.metadata`.

Alembic and the schema tests use it, so a table defined in any model module is compared
against the migrations.
"""

from backlot.db import access, cuts, jobs, models, provenance, review_sync  # noqa: F401
from backlot.db.models import Base

metadata = Base.metadata
