"""Versions: where their pictures start (first numbered image, first movie), kept by the database.

A render holds a file per frame; finding a version's image sequence by probing
`version_files` costs an index scan per version, which adds up over a cut's worth of
shots (conform, the OTIO media linker). As ShotGrid's "path to frames / path to movie",
each version now carries `first_image` (its first numbered image file in name order) and
`first_movie` (its first movie file), derived by a trigger as its files are attached and
never written by the application.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# The same patterns editorial reads media with (pipeline/editorial/shot_versions.py).
IMAGE = r"'\d+\.(png|exr|jpe?g|tiff?|dpx|webp)$'"
MOVIE = r"'\.(mp4|mov|mxf|mkv|webm|avi)$'"

# Per version: the first image and the first movie among `files` (in the path's collation, as ORDER BY path).
FIRSTS = """SELECT version_id, min(path) FILTER (WHERE path ~* IMAGE) AS first_image,
                   min(path) FILTER (WHERE path ~* MOVIE) AS first_movie
            FROM FILES GROUP BY version_id""".replace("IMAGE", IMAGE).replace("MOVIE", MOVIE)

TRIGGERS_SQL = r"""
-- New versions start with no media (their files come after them); only the trigger below sets it.
CREATE FUNCTION backlot_version_media_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.first_image := NULL;
        NEW.first_movie := NULL;
    ELSIF (NEW.first_image, NEW.first_movie) IS DISTINCT FROM (OLD.first_image, OLD.first_movie)
          AND coalesce(current_setting('backlot.attaching_files', true), '') <> 'on' THEN
        RAISE EXCEPTION 'versions.first_image and versions.first_movie are derived from the version''s files'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

-- Files are attached in the version's own transaction, in one statement or several (each
-- statement's rows at once: a render's thousands of frames cost one update per version).
CREATE FUNCTION backlot_version_files_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('backlot.attaching_files', 'on', true);
    UPDATE versions v SET first_image = least(v.first_image, f.first_image),
                          first_movie = least(v.first_movie, f.first_movie)
    FROM (FIRSTS) f
    WHERE v.id = f.version_id
      AND (least(v.first_image, f.first_image), least(v.first_movie, f.first_movie))
          IS DISTINCT FROM (v.first_image, v.first_movie);
    PERFORM set_config('backlot.attaching_files', 'off', true);
    RETURN NULL;
END $$;

CREATE TRIGGER version_media_guard BEFORE INSERT OR UPDATE ON versions
    FOR EACH ROW EXECUTE FUNCTION backlot_version_media_guard();
CREATE TRIGGER version_files_added AFTER INSERT ON version_files REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION backlot_version_files_added();
""".replace("FIRSTS", FIRSTS.replace("FILES", "added"))

BACKFILL_SQL = f"""
UPDATE versions v SET first_image = f.first_image, first_movie = f.first_movie
FROM ({FIRSTS.replace("FILES", "version_files")}) f
WHERE v.id = f.version_id AND (f.first_image IS NOT NULL OR f.first_movie IS NOT NULL)
"""


def upgrade() -> None:
    op.add_column('versions', sa.Column('first_image', sa.Text(), nullable=True))
    op.add_column('versions', sa.Column('first_movie', sa.Text(), nullable=True))
    op.execute(BACKFILL_SQL)
    op.execute(TRIGGERS_SQL)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS version_files_added ON version_files")
    op.execute("DROP TRIGGER IF EXISTS version_media_guard ON versions")
    op.execute("DROP FUNCTION IF EXISTS backlot_version_files_added()")
    op.execute("DROP FUNCTION IF EXISTS backlot_version_media_guard()")
    op.drop_column('versions', 'first_movie')
    op.drop_column('versions', 'first_image')
