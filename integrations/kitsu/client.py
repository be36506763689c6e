"""The one place that talks to Kitsu: gazu calls, with Kitsu's failures turned into
`KitsuError`s that say what went wrong and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Callable

from backlot.errors import BacklotError


class KitsuError(BacklotError):
    """Kitsu is unreachable, refused the credentials, or refused a request."""


class KitsuUnreachable(KitsuError):
    """The server went away: stop the sync, the next one resumes it."""


@dataclass(frozen=True)
class Credentials:
    auth: str  # "bot-token" or "login"
    secret: str  # the bot's token, or the password
    login: str | None = None


def _translated(what: str) -> Callable:
    def decorate(method: Callable) -> Callable:
        @wraps(method)
        def call(self: "Kitsu", *args, **kwargs):
            import requests
            from gazu import exception as gz

            try:
                return method(self, *args, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise KitsuUnreachable(f"Kitsu at {self.url} cannot be reached while {what} "
                                       f"({type(exc).__name__}); check that it is up, then sync again") from None
            except gz.ValidationException if what == "logging in" else ():  # a malformed token
                raise KitsuError(f"Kitsu at {self.url} refused the credentials while {what}: "
                                 "link again with a valid --bot-token or --login") from None
            except (gz.NotAuthenticatedException, gz.AuthFailedException):
                raise KitsuError(f"Kitsu at {self.url} refused the credentials while {what}: "
                                 "link again with a valid --bot-token or --login") from None
            except gz.NotAllowedException:
                raise KitsuError(f"Kitsu refused {what}: the linked account lacks the right "
                                 "(it needs to be a production manager or admin of the production)") from None
            except gz.RouteNotFoundException:
                raise KitsuError(f"{self.url} answered 'not found' while {what}: is it Zou's API root? "
                                 "(behind Kitsu's web server it usually ends in /api)") from None
            except gz.GazuException as exc:
                raise KitsuError(f"Kitsu failed while {what}: {type(exc).__name__}: {exc}") from None
        return call
    return decorate


class Kitsu:
    """A logged-in client for one Kitsu server."""

    def __init__(self, url: str, credentials: Credentials, events_url: str | None = None):
        import gazu

        self.url = url.rstrip("/")
        self.client = gazu.client.create_client(self.url)
        self.client.event_host = events_url  # None: the event stream is served beside the API
        self._log_in(credentials)

    @_translated("logging in")
    def _log_in(self, credentials: Credentials) -> None:
        import gazu

        if not gazu.client.host_is_up(client=self.client):
            raise KitsuError(f"nothing answers at {self.url}: check --url (Zou's API root, e.g. "
                             "https://kitsu.example.com/api) and that the server is up")
        if credentials.auth == "login":
            gazu.log_in(credentials.login, credentials.secret, client=self.client)
        else:
            gazu.client.set_tokens({"access_token": credentials.secret}, client=self.client)
        gazu.client.get_current_user(client=self.client)  # proves the token; raises when refused

    @_translated("looking up the production")
    def find_production(self, name: str) -> dict | None:
        import gazu

        return gazu.project.get_project_by_name(name, client=self.client)

    @_translated("creating the production")
    def create_production(self, name: str, fps: str) -> dict:
        import gazu

        production = gazu.project.new_project(name, client=self.client)
        return gazu.project.update_project(dict(production, fps=fps), client=self.client) or production

    @_translated("looking up the task type")
    def ensure_task_type(self, production: dict | str, name: str) -> dict:
        import gazu

        task_type = gazu.task.get_task_type_by_name(name, client=self.client)
        if task_type is None:
            known = sorted({t["name"] for t in gazu.task.all_task_types(client=self.client)})
            raise KitsuError(f"Kitsu has no task type {name!r}; use one of: {', '.join(known)}")
        production_id = production if isinstance(production, str) else production["id"]
        used = gazu.project.get_project(production_id, client=self.client).get("task_types") or []
        if task_type["id"] not in used:
            gazu.project.add_task_type(production_id, task_type, len(used) + 1, client=self.client)
        return task_type

    @_translated("reading the task statuses")
    def task_statuses(self) -> dict[str, dict]:
        import gazu

        return {s["short_name"]: s for s in gazu.task.all_task_statuses(client=self.client)}

    @_translated("looking up a sequence")
    def find_sequence(self, production: dict | str, name: str) -> dict | None:
        import gazu

        return gazu.shot.get_sequence_by_name(production, name, client=self.client)

    @_translated("creating a sequence")
    def create_sequence(self, production: dict | str, name: str) -> dict:
        import gazu

        return gazu.shot.new_sequence(production, name, client=self.client)

    @_translated("looking up a shot")
    def find_shot(self, sequence: dict | str, name: str) -> dict | None:
        import gazu

        return gazu.shot.get_shot_by_name(sequence, name, client=self.client)

    @_translated("creating a shot")
    def create_shot(self, production: dict | str, sequence: dict | str, name: str, frame_in: int | None,
                    frame_out: int | None) -> dict:
        import gazu

        frames = frame_out - frame_in + 1 if frame_in is not None and frame_out is not None else None
        return gazu.shot.new_shot(production, sequence, name, nb_frames=frames, frame_in=frame_in,
                                  frame_out=frame_out, client=self.client)

    @_translated("looking up a shot's task")
    def ensure_task(self, production_id: str, shot_id: str, task_type: dict) -> dict:
        import gazu

        shot = {"id": shot_id, "project_id": production_id}
        return (gazu.task.get_task_by_entity(shot, task_type, client=self.client)
                or gazu.task.new_task(shot, task_type, client=self.client))

    @_translated("reading a task's comments")
    def comments(self, task_id: str) -> list[dict]:
        import gazu

        return gazu.task.all_comments_for_task(task_id, client=self.client)

    @_translated("posting a comment")
    def add_comment(self, task_id: str, status: dict, text: str) -> dict:
        import gazu

        return gazu.task.add_comment(task_id, status, text, client=self.client)

    @_translated("uploading a preview")
    def add_preview(self, task_id: str, comment_id: str, movie: Path) -> dict:
        import gazu

        return gazu.task.add_preview(task_id, comment_id, str(movie), client=self.client)

    @_translated("uploading a preview")
    def resume_preview(self, task_id: str, comment_id: str, movie: Path) -> dict:
        """Finish an upload cut off earlier: Kitsu makes the preview's record before it takes
        the file, so send the file to that record rather than making a second one."""
        import gazu

        comment = next((c for c in gazu.task.all_comments_for_task(task_id, client=self.client)
                        if c["id"] == comment_id), None)
        if comment is None:
            raise KitsuError(f"the comment {comment_id} Backlot posted on task {task_id} is gone from Kitsu")
        if not comment.get("previews"):
            return gazu.task.add_preview(task_id, comment_id, str(movie), client=self.client)
        preview = comment["previews"][-1]
        gazu.task.upload_preview_file(preview["id"], str(movie), client=self.client)
        return gazu.files.get_preview_file(preview["id"], client=self.client)

    def listen(self, event: str, handler: Callable[[dict], None]):
        """Call `handler` for each `event` on Kitsu's event stream; returns the connection
        (`.disconnect()` it), or None when the stream cannot be reached (polling goes on)."""
        import gazu

        try:
            stream = gazu.events.init(client=self.client, reconnection=True)
        except Exception:  # noqa: BLE001 - socketio raises its own connection errors; polling covers it
            return None
        gazu.events.add_listener(stream, event, handler)
        return stream
