"""The embedded PostgreSQL: started by the command that needs it, ended by `backlot db stop`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from backlot.db.embedded import EmbeddedPostgres, _pid_alive

pytestmark = pytest.mark.slow


def backlot(home, *args, check=True):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env["BACKLOT_HOME"] = str(home)
    env["BACKLOT_STORE"] = str(home / "store")
    result = subprocess.run([sys.executable, "-m", "backlot.services.cli", *args], capture_output=True, text=True,
                            env=env, timeout=180)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_commands_start_the_server_and_db_stop_ends_it(tmp_path):
    home = tmp_path / "home"
    status = json.loads(backlot(home, "db", "status", "--json").stdout)
    assert status["embedded"] is True and status["running"] is False

    backlot(home, "project", "create", "film", "--fps", "25")
    status = json.loads(backlot(home, "db", "status", "--json").stdout)
    assert status["running"] is True and status["revision"] == status["head"]
    pid = status["pid"]
    assert _pid_alive(pid)
    password = home / "postgres" / "password"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600

    assert "stopped" in backlot(home, "db", "stop").stdout
    assert not EmbeddedPostgres(home).status().running
    assert "not running" in backlot(home, "db", "stop").stdout

    # The next command starts it again and the data is still there.
    projects = json.loads(backlot(home, "project", "list", "--json").stdout)
    assert [p["code"] for p in projects] == ["film"] and projects[0]["fps"] == "25/1"
    assert "running" in backlot(home, "db", "start").stdout
    backlot(home, "db", "stop")
    assert not EmbeddedPostgres(home).status().running


def test_a_data_folder_that_is_not_a_cluster_is_refused(tmp_path):
    home = tmp_path / "home"
    junk = home / "postgres" / "data"
    junk.mkdir(parents=True)
    (junk / "something").write_text("not postgres")
    result = backlot(home, "db", "start", check=False)
    assert result.returncode == 2
    assert "holds no PostgreSQL cluster" in result.stderr and result.stdout == ""
