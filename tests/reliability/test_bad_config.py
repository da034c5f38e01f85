"""Bad configuration: one clear line on stderr, exit status 2 (usage) or 3 (fatal), no traceback;
with ``--debug`` a traceback, but never the key."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest

from cvbulk.emulator import EmulatorConfig, EmulatorThread

from .conftest import cli_env, cvbulk, small_tree, training_client

pytestmark = pytest.mark.timeout(120)

KEY = "wrong-key-3f1c9a7e5b2d4c6e8a0b"


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with EmulatorThread(EmulatorConfig(data_dir=tmp_path_factory.mktemp("emulator"), seed=51)) as emu:
        async def twins() -> None:
            async with training_client(emu) as client:
                await client.create_project("twin")
                await client.create_project("twin")
                await client.create_project("single")

        anyio.run(twins)
        yield emu


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    small_tree(root, 2)
    return root


class _WebPage(BaseHTTPRequestHandler):
    """A web server that is not Custom Vision: an HTML page for every request."""

    def _page(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _page

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def web_page() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def _one_clear_line(done, codes: tuple[int, ...], key: str | None = None) -> str:
    assert done.returncode in codes, (done.returncode, done.stderr[-1500:])
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("cvbulk: error: "), lines[0]
    if key:
        assert key not in done.stderr and key not in done.stdout
    return lines[0]


def _upload(root, env, cwd, *extra: str, project: str = "single"):
    return cvbulk("upload", str(root), "--project", project, "--tier", "unlimited", *extra, env=env, cwd=cwd,
                  timeout=100)


def test_wrong_key(emu, tree, tmp_path):
    env = cli_env(emu, VISION_TRAINING_KEY=KEY)
    line = _one_clear_line(_upload(tree, env, tmp_path), (3,), KEY)
    assert "key" in line.lower() or "denied" in line.lower()


def test_wrong_prediction_key(emu, tree, tmp_path):
    env = cli_env(emu, VISION_PREDICTION_KEY=KEY)
    env.pop("VISION_TRAINING_KEY")
    done = cvbulk("predict", str(tree), "--project", "00000000-0000-0000-0000-000000000001", "--published-name",
                  "prod", "--output", str(tmp_path / "o.csv"), "--tier", "unlimited", env=env, cwd=tmp_path)
    _one_clear_line(done, (3,), KEY)


def test_wrong_key_with_debug_shows_a_traceback_without_the_key(emu, tree, tmp_path):
    env = cli_env(emu)
    done = _upload(tree, env, tmp_path, "--debug", "--key", KEY)
    assert done.returncode == 3
    assert "Traceback" in done.stderr
    assert KEY not in done.stderr and KEY not in done.stdout
    assert done.stderr.rstrip().splitlines()[-1].startswith("cvbulk: error: ")


def test_endpoint_where_nothing_listens(emu, tree, tmp_path):
    """A refused connection before the first answer is fatal at once (EndpointUnreachableError): the user
    hears about a wrong port within seconds, not after the whole retry budget."""
    env = cli_env(emu, VISION_TRAINING_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    done = cvbulk("upload", str(tree), "--project", "single", "--tier", "unlimited", env=env, cwd=tmp_path,
                  timeout=10)
    line = _one_clear_line(done, (3,))
    assert "127.0.0.1" in line or "reachable" in line


def test_endpoint_path_that_is_not_custom_vision(emu, tree, tmp_path):
    env = cli_env(emu, VISION_TRAINING_ENDPOINT=emu.endpoint + "/not-custom-vision")
    _one_clear_line(_upload(tree, env, tmp_path), (2, 3))


def test_endpoint_that_is_a_web_page(emu, web_page, tree, tmp_path):
    env = cli_env(emu, VISION_TRAINING_ENDPOINT=web_page)
    _one_clear_line(_upload(tree, env, tmp_path), (2, 3))


def test_unknown_project(emu, tree, tmp_path):
    line = _one_clear_line(_upload(tree, cli_env(emu), tmp_path, project="no-such-project"), (3,))
    assert "no-such-project" in line


def test_name_that_matches_two_projects(emu, tree, tmp_path):
    line = _one_clear_line(_upload(tree, cli_env(emu), tmp_path, project="twin"), (2,))
    assert "twin" in line


def test_no_endpoint_given(emu, tree, tmp_path):
    env = cli_env(None)
    line = _one_clear_line(_upload(tree, env, tmp_path, "--key", KEY), (2,), KEY)
    assert "endpoint" in line
    done = cvbulk("predict", str(tree), "--project", "single", "--published-name", "prod",
                  "--output", str(tmp_path / "o.csv"), env=env, cwd=tmp_path)
    assert "endpoint" in _one_clear_line(done, (2,))


def test_no_endpoint_with_debug_still_one_line_and_no_key(emu, tree, tmp_path):
    done = _upload(tree, cli_env(None), tmp_path, "--key", KEY, "--debug")
    assert done.returncode == 2
    assert KEY not in done.stderr and KEY not in done.stdout
