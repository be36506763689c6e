"""The API's routers.

Extension points (built by other work, not here):
- cuts and change lists (the editorial issue): add `routes/cuts.py` with
  `router = APIRouter(prefix="/api/projects/{project}")` and routes on `/cuts`,
  `/cuts/{cut_id}`, `/cuts/{cut_id}/changes`;
- jobs (the Celery issue): `routes/jobs.py` with `/jobs`, `/jobs/{job_id}`.
Append the router to ROUTERS. Each route takes one of the access dependencies of
services/api/auth.py (Viewer, Artist, Supervisor, Admin): the app refuses to start with a
route that has none, and tests/api/test_permissions.py fails until it knows how to call
the new route (add it to its REQUESTS table).
"""

from backlot.services.api.routes import media, projects, regen, rights, versions, webhooks

ROUTERS = [projects.router, versions.router, media.router, webhooks.router, regen.router, rights.router]
