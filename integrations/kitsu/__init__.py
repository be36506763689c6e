"""Review in Kitsu: shot renders go up as preview revisions, review statuses and comments
come back as Backlot version statuses and notes.

`client` is the only module that talks to Kitsu (through gazu, Kitsu's Python client);
`links` keeps the project ↔ production link and its credentials; `push` and `pull` are the
two directions; `sync` runs them with a report. Import cost stays small: gazu is loaded by
the commands that need it.
"""

from backlot.integrations.kitsu.links import DEFAULT_STATUS_MAP, LinkRecord, get_link, link_project
from backlot.integrations.kitsu.sync import SyncReport, sync_project

__all__ = ["DEFAULT_STATUS_MAP", "LinkRecord", "SyncReport", "get_link", "link_project", "sync_project"]
