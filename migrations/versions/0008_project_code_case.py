"""Project codes are unique without regard to case: `FILM` and `film` are one project.

References name projects in either case and resolve to the stored code (docs/tracker.md),
so two codes that differ only in case would make a reference ambiguous. The plain unique
constraint on `code` becomes a unique index on `lower(code)` (which also serves the
case-insensitive lookup). A database that already holds such codes is not merged: the
upgrade stops and names them, to be renamed by hand first.

Revision ID: 0008_project_code_case
Revises: 0007
Create Date: 2026-12-10
"""
from alembic import op
import sqlalchemy as sa

from backlot.errors import ConflictError

revision = '0008_project_code_case'
down_revision = '0007'
branch_labels = None
depends_on = None

CLASHES_SQL = """
SELECT string_agg(format('%s (id %s)', code, id), ' and ' ORDER BY id) AS codes
FROM projects GROUP BY lower(code) HAVING count(*) > 1 ORDER BY lower(code)
"""


def upgrade() -> None:
    clashes = [row.codes for row in op.get_bind().execute(sa.text(CLASHES_SQL))]
    if clashes:
        raise ConflictError(
            "project codes must be unique without regard to case, and these differ only in case: "
            + "; ".join(clashes) + ". Rename all but one of each (UPDATE projects SET code = 'NEW' WHERE id = ID) "
            "and run `backlot db upgrade` again")
    op.drop_constraint("uq_projects_code", "projects", type_="unique")
    op.create_index("uq_projects_lower_code", "projects", [sa.text("lower(code)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_projects_lower_code", table_name="projects")
    op.create_unique_constraint("uq_projects_code", "projects", ["code"])
