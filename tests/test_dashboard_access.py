"""Who may see the dashboard, and how it refuses to start: one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dashboard.config import ConfigError
from dashboard.web_access import COOKIE, check_exposure, is_loopback
from demo.local_dashboard import LOOPBACK, ROOT, DashboardProcess, free_port

TOKEN = "correct-horse-battery"
NO_BROKER = f"mqtt://{LOOPBACK}:{free_port()}"  # nothing listens there: the page is served all the same


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)
    assert "no password needed" in check_exposure(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "pi.local", "example.com"])
def test_any_other_address_needs_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="access token"):
        check_exposure(host, None)
    assert "access token required" in check_exposure(host, TOKEN)


def run_dashboard(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dashboard", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_a_network_address_without_a_token_is_refused(tmp_path: Path) -> None:
    result = run_dashboard("--host", "0.0.0.0", "--db", str(tmp_path / "h.sqlite3"), "--broker", NO_BROKER)
    assert_refused(result, "0.0.0.0", "access token")


@pytest.mark.parametrize(("args", "words"), [
    (["--broker", "http://broker:1883"], ["mqtt://"]),
    (["--broker", "mqtt://"], ["no host name"]),
    (["--broker", "mqtt://user:secret@broker"], ["credentials"]),
    (["--broker", "mqtt://broker:99999"], ["does not parse"]),
    (["--topic-prefix", "edge-emotion/+/"], ["{device_id}"]),
    (["--share-group", "a/b"], ["--share-group"]),
    (["--retention-days", "0"], ["--retention-days"]),
    (["--mqtt-password-file", "/nonexistent/password"], ["/nonexistent/password"]),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], words: list[str]) -> None:
    assert_refused(run_dashboard("--db", str(tmp_path / "h.sqlite3"), *args), *words)


def test_an_unwritable_history_path_is_refused(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    result = run_dashboard("--db", str(not_a_folder / "h.sqlite3"), "--broker", NO_BROKER)
    assert_refused(result, str(not_a_folder / "h.sqlite3"), "--db")


def test_a_port_in_use_is_refused(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_dashboard("--db", str(tmp_path / "h.sqlite3"), "--broker", NO_BROKER,
                               "--port", str(port))
    assert_refused(result, f"{LOOPBACK}:{port}")


def status_of(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_with_a_token_every_path_needs_it(tmp_path: Path) -> None:
    dashboard = DashboardProcess(NO_BROKER, tmp_path / "h.sqlite3", tmp_path / "dashboard.log",
                                 token=TOKEN).start()
    try:
        log = dashboard.log_path.read_text()
        assert "access token required" in log
        for path in ("", "events", "api/health", "export.csv", "static/dashboard.js"):
            code, headers = status_of(dashboard.url + path)
            assert code == 401, path
            assert headers["WWW-Authenticate"].startswith("Basic")
        assert status_of(dashboard.url, {"Authorization": "Bearer wrong-token-x"})[0] == 401
        assert status_of(dashboard.url, {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
        assert status_of(dashboard.url + "api/health", {"Authorization": f"Basic {basic}"})[0] == 200
        code, headers = status_of(dashboard.url + f"?token={TOKEN}")
        assert code == 302 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"]
        assert cookie.startswith(f"{COOKIE}={TOKEN}") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert status_of(dashboard.url + "api/health", {"Cookie": f"{COOKIE}={TOKEN}"})[0] == 200
    finally:
        assert dashboard.stop() == 0


def test_the_page_and_its_files_are_all_local(tmp_path: Path) -> None:
    dashboard = DashboardProcess(NO_BROKER, tmp_path / "h.sqlite3", tmp_path / "dashboard.log").start()
    try:
        page = dashboard.get("").decode()
        code, headers = status_of(dashboard.url)
        assert code == 200 and "default-src 'self'" in headers["Content-Security-Policy"]
        for asset in ("static/dashboard.js", "static/dashboard.css", "static/favicon.svg"):
            assert "/" + asset in page
            assert dashboard.get(asset)
        assert "http://" not in page and "https://" not in page  # no CDN: a Pi offline shows the same page
        assert "no password needed" in dashboard.log_path.read_text()
    finally:
        assert dashboard.stop() == 0
