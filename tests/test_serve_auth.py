"""Who may talk to ``memfs serve``: every route family behind the token, revocation at once,
no token in any log line, no path parameter reaching outside the cloud.

The middleware is checked in-process over a route table covering git (/v1/git/...), the REST
API (/v1/...) and the console (/), so it is proven to wrap every route whatever routes the
other modules bring; then as a whole ``memfs serve`` process with real HTTP clients.
"""

from __future__ import annotations

import base64
import http.client
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from memfs.server.agents import AgentCache
from memfs.server.app import create_app
from memfs.server.context import ServerContext
from memfs.tokens import TokenChecker, create_token, revoke_token
from tests.serve import running_server
from tests.test_serve_cache import make_agent

ROUTES = [
    ("GET", "/v1/git/alpha/state.git/info/refs?service=git-upload-pack"),
    ("POST", "/v1/git/alpha/state.git/git-receive-pack"),
    ("GET", "/v1/health"),
    ("GET", "/v1/agents"),
    ("PATCH", "/v1/agents/alpha/core-memory/blocks/persona"),
    ("GET", "/"),
    ("GET", "/agents/alpha"),
    ("POST", "/agents/alpha/edit"),
    ("GET", "/no/such/route"),
]


def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("served " + request.url.path)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Path, str]]:
    """The app behind the middleware, with a trivial route at every family's paths."""
    cloud = (tmp_path / "cloud").as_uri()
    tokens = tmp_path / "tokens.json"
    secret, _ = create_token(tokens, "test")
    ctx = ServerContext(
        "test", cloud, {}, AgentCache(cloud, {}, tmp_path / "cache"),
        token_required=True, tokens=TokenChecker(tokens),
    )  # fmt: skip
    app = create_app(ctx)
    methods = ["GET", "POST", "PATCH"]
    app.router.routes[:0] = (  # first: they answer whatever routes the modules bring
        [
            Route("/v1/git/{agent}/state.git/{rest:path}", _ok, methods=methods),
            Route("/v1/{rest:path}", _ok, methods=methods),
            Route("/{rest:path}", _ok, methods=methods),
        ]
    )
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client, tokens, secret


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_family_answers_401_without_a_valid_token(
    client: tuple[TestClient, Path, str], method: str, path: str
) -> None:
    http, _, secret = client
    refusals = [
        {},
        {"Authorization": "Bearer memfs_wrong"},
        {"Authorization": basic("letta", "memfs_wrong")},
        {"Authorization": basic("letta", "")},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": f"Token {secret}"},
        {"Authorization": "Bearer"},
        {"Cookie": "memfs_token=memfs_wrong"},
        {"Cookie": f"other={secret}"},
    ]
    for headers in refusals:
        answer = http.request(method, path, headers=headers, follow_redirects=False)
        assert answer.status_code == 401, (headers, answer.status_code)
        assert answer.headers["www-authenticate"].startswith('Basic realm="memfs"')
        assert secret not in answer.text
        if path.startswith("/v1/") and not path.startswith("/v1/git/"):
            assert answer.json() == {"detail": answer.json()["detail"]}
    for headers in (
        {"Authorization": f"Bearer {secret}"},
        {"Authorization": basic("letta", secret)},
        {"Authorization": basic("anyone", secret)},
        {"Cookie": f"memfs_token={secret}"},
    ):
        answer = http.request(method, path, headers=headers)
        assert answer.status_code == 200, (headers, answer.status_code)
        assert answer.text == "served " + path.split("?")[0]


def test_a_browser_without_a_token_is_sent_to_the_login_page(
    client: tuple[TestClient, Path, str],
) -> None:
    http, _, _ = client
    answer = http.get("/agents/alpha?tab=history", headers={"Accept": "text/html"},
                      follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fagents%2Falpha%3Ftab%3Dhistory"
    assert http.get("/login").status_code == 200  # the login form itself is open
    assert http.get("/static/console.css").status_code == 200
    for sneaky in ("/static/../v1/agents", "/static/%2e%2e/v1/agents", "/login/../v1/agents"):
        assert http.get(sneaky, follow_redirects=False).status_code == 401, sneaky


def test_a_revoked_token_stops_working_at_the_next_request(
    client: tuple[TestClient, Path, str],
) -> None:
    http, tokens, secret = client
    other, _ = create_token(tokens, "other")
    assert http.get("/v1/agents", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    revoke_token(tokens, "test")
    assert http.get("/v1/agents", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert http.get("/v1/agents", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    tokens.unlink()  # every token gone: nobody, never everybody
    assert http.get("/v1/agents", headers={"Authorization": f"Bearer {other}"}).status_code == 401
    assert http.get("/v1/agents").status_code == 401


def test_a_garbled_token_file_lets_nobody_in(client: tuple[TestClient, Path, str]) -> None:
    http, tokens, secret = client
    tokens.write_text("{not json")
    assert http.get("/v1/agents", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


# -- a whole server process ---------------------------------------------------------------


def raw(url: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One request with ``path`` sent exactly as written (no client-side normalising)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for key, value in headers.items():
            connection.putheader(key, value)
        connection.putheader("Content-Length", "0")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def memfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memfs", *args], capture_output=True, text=True, timeout=60
    )


def test_revocation_takes_effect_at_once_on_a_running_server(tmp_path: Path) -> None:
    with running_server((tmp_path / "cloud").as_uri(), tmp_path, token=True) as server:
        bearer = server.auth_headers()
        assert raw(server.url, "GET", "/v1/no-such", bearer)[0] == 404  # past the middleware
        names = memfs("token", "list", "--json", "--token-file", str(server.token_file))
        name = names.stdout.split('"name": "')[1].split('"')[0]
        done = memfs("token", "revoke", name, "--token-file", str(server.token_file))
        assert done.returncode == 0, done.stderr
        assert raw(server.url, "GET", "/v1/no-such", bearer)[0] == 401
        assert raw(server.url, "GET", "/v1/no-such", {"Authorization": server.basic()})[0] == 401


def test_tokens_never_appear_in_the_servers_output(tmp_path: Path) -> None:
    cloud = (tmp_path / "cloud").as_uri()
    make_agent(tmp_path, cloud)
    with running_server(cloud, tmp_path, token=True) as server:
        assert server.token
        wrong = "memfs_" + "x" * 43
        for headers in (
            server.auth_headers(),
            {"Authorization": server.basic()},
            {"Cookie": f"memfs_token={server.token}"},
            {"Authorization": f"Bearer {wrong}"},
            {"Authorization": basic("letta", wrong)},
        ):
            for method, path in ROUTES:
                raw(server.url, method, path, headers)
        assert server.stop() == 0
    output = server.output()
    assert "GET /v1/agents" in output  # the access log is on, and says only method and path
    for secret in (server.token, wrong):
        for form in (secret, base64.b64encode(f"letta:{secret}".encode()).decode(), secret[6:20]):
            assert form not in output


HOSTILE_PATHS = [
    "/v1/agents/..%2fsecret", "/v1/agents/%2e%2e%2fsecret", "/v1/agents/%252e%252e%252fsecret",
    "/v1/agents/..", "/v1/agents/%2e%2e", "/v1/agents/%2Fetc%2Fpasswd",
    "/v1/agents/..%2f..%2f..%2fetc%2fpasswd/core-memory/blocks",
    "/v1/agents/%00/core-memory/blocks", "/v1/agents/" + "a" * 3000,
    "/v1/git/..%2fsecret/state.git/info/refs?service=git-upload-pack",
    "/v1/git/%2e%2e%2fsecret/state.git/info/refs?service=git-upload-pack",
    "/v1/git/%252e%252e%252fsecret/state.git/info/refs?service=git-upload-pack",
    "/v1/git/../secret/state.git/info/refs?service=git-upload-pack",
    "/v1/git//etc/passwd/state.git/info/refs?service=git-upload-pack",
    "/agents/..%2fsecret", "/agents/%2e%2e%2fsecret", "/../secret", "/%2e%2e/secret",
    "//etc/passwd", "/v1/blocks/..%2f..%2fsecret",
]  # fmt: skip


@pytest.mark.parametrize("with_token", [False, True])
def test_path_parameters_cannot_reach_outside_the_cloud(tmp_path: Path, with_token: bool) -> None:
    """An agent beside the cloud (``secret``, in the cloud's parent) is never served, and no
    file is written outside the server's cache."""
    parent = tmp_path / "store"
    make_agent(tmp_path / "outside", (parent).as_uri(), name="secret")
    cloud = (parent / "cloud").as_uri()
    make_agent(tmp_path, cloud)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with running_server(cloud, tmp_path, token=with_token) as server:
        headers = server.auth_headers()
        for path in HOSTILE_PATHS:
            status, body = raw(server.url, "GET", path, headers)
            assert status in (400, 401, 403, 404), (path, status)
            assert b"notes" not in body and b"who" not in body, path
            assert status != 401 or not with_token, path
        assert server.proc.poll() is None
    assert "Traceback" not in server.output()
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    new = [p for p in after if p not in before and not str(p).startswith("serve-cache")]
    assert [p for p in new if p.name != "tokens.json" and not p.name.startswith("tokens.")] == []


def test_a_server_without_tokens_answers_only_requests_naming_a_loopback_host(
    tmp_path: Path,
) -> None:
    """DNS rebinding: a page on evil.example rebound to 127.0.0.1 sends ``Host: evil.example``
    and must read nothing; the same request naming the loopback is answered."""
    cloud = (tmp_path / "cloud").as_uri()
    make_agent(tmp_path, cloud)
    with running_server(cloud, tmp_path, token=False) as server:
        port = server.url.rsplit(":", 1)[1]
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "10.0.0.1"):
            status, body = raw(server.url, "GET", "/v1/agents", {"Host": host})
            assert status == 403, host
            assert b"loopback" in body and b"notes" not in body
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1"):
            status, _ = raw(server.url, "GET", "/v1/agents", {"Host": host})
            assert status == 200, host
