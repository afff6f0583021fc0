"""The thin S3 client (memfs/remotes/s3.py) against moto over real HTTP, and its signer
against botocore's and AWS's published example.

moto checks SigV4 signatures only with IAM authentication on (``iam_auth`` below): then it
recomputes every request's signature with botocore's ``S3SigV4Auth`` and the key of an IAM
user, so a signing mistake is a SignatureDoesNotMatch here as on AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import memfs
from memfs.errors import RemoteAuthError, RemoteUnreachableError
from memfs.remotes.configure import add_remote
from memfs.remotes.s3 import S3Client, sign
from memfs.remotes.s3config import Credentials, NeedsBotocore, NoCredentials, S3Config, resolve
from memfs.remotes.s3storage import S3Storage
from memfs.remotes.storage import UNCHANGED, open_storage

from .conftest import S3Bucket, memfs_process
from .faultproxy import fault_proxy
from .servers import free_port, serving

AWS_EXAMPLE = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def _config(
    credentials: Credentials | None, host: str = "examplebucket.s3.amazonaws.com"
) -> S3Config:
    return S3Config("https", host, "us-east-1", credentials, False, True)


def test_the_signature_of_aws_published_get_object_example() -> None:
    """The 'GET Object' example of AWS's SigV4 header-signing documentation, to the digit."""
    headers = {"host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9"}
    now = time.strptime("20130524T000000Z", "%Y%m%dT%H%M%SZ")
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    sign(_config(AWS_EXAMPLE), "GET", "/test.txt", "", headers, empty, now)
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


@pytest.mark.parametrize(
    ("method", "path", "query", "extra", "body", "token"),
    [
        ("PUT", "/bkt/a%20b/c%2Bd/%C3%BCn%C3%AF.md", "", {"if-match": '"abc"'}, b"data", None),
        ("GET", "/bkt", "list-type=2&prefix=agents%2Fx%2F&delimiter=%2F", {}, b"", "tok/en="),
        ("PUT", "/bkt/manifest.json", "", {"if-none-match": "*"}, b"{}", None),
    ],
)
def test_the_signature_is_botocores(
    method: str, path: str, query: str, extra: dict[str, str], body: bytes, token: str | None
) -> None:
    """The same request signed by botocore's S3SigV4Auth gets the same Authorization."""
    import hashlib

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    keys = Credentials(AWS_EXAMPLE.access_key, AWS_EXAMPLE.secret_key, token)
    host = "127.0.0.1:9000"
    now = time.gmtime()
    ours = {"host": host, **extra}
    sign(_config(keys, host), method, path, query, ours, hashlib.sha256(body).hexdigest(), now)
    url = f"http://{host}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(extra))
    request.context["timestamp"] = time.strftime("%Y%m%dT%H%M%SZ", now)
    auth = S3SigV4Auth(BotoCredentials(keys.access_key, keys.secret_key, token), "s3", "us-east-1")
    auth.add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]


@pytest.fixture
def iam_key(s3: S3Bucket) -> Iterator[tuple[str, str]]:
    """An IAM user's key allowed s3:*, with moto checking every request's signature."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.authorization import enable_iam_authentication
    from moto.iam.models import iam_backends

    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    user = f"memfs-{s3.name}"
    iam.create_user("us-east-1", user)
    key = iam.create_access_key(user)
    allow_s3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    iam.put_user_policy(user, "s3", json.dumps({"Version": "2012-10-17", "Statement": [allow_s3]}))
    with enable_iam_authentication():
        yield key.access_key_id, key.secret_access_key
    iam.delete_access_key(key.access_key_id, user)
    iam.delete_user_policy(user, "s3")
    iam.delete_user(user)


KEYS = ["manifest.json", "a b/c+d.md", "ünï/çode ✓.md", "x%y=z&q?;.md", "packs/pack-1.pack"]


def test_signed_requests_are_accepted_and_keys_round_trip(
    s3: S3Bucket, iam_key: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every operation, signed, on keys with spaces, '+', unicode and URL syntax."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", iam_key[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", iam_key[1])
    storage = open_storage(s3.url("agents/x"))
    assert isinstance(storage, S3Storage)
    for key in KEYS:
        assert storage.put_if_absent(key, key.encode())
    assert storage.get_many(KEYS) == [(key.encode(), storage.get(key)[1]) for key in KEYS]  # type: ignore[index]
    assert storage.list("") == sorted(KEYS)
    assert storage.list("packs") == ["packs/pack-1.pack"]
    assert storage.folders() == sorted(["a b", "ünï", "packs"])
    assert open_storage(s3.url("agents")).folders() == ["x"]
    assert storage.modified("a b/c+d.md") == pytest.approx(time.time(), abs=120)
    storage.delete("a b/c+d.md")
    assert storage.get("a b/c+d.md") is None and storage.modified("a b/c+d.md") is None
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3.server.endpoint,
        aws_access_key_id=iam_key[0],
        aws_secret_access_key=iam_key[1],
    )
    listed = {item["Key"] for item in client.list_objects_v2(Bucket=s3.name)["Contents"]}
    assert listed == {f"agents/x/{key}" for key in KEYS if key != "a b/c+d.md"}


def test_a_wrong_secret_is_a_remote_auth_error(
    s3: S3Bucket, iam_key: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", iam_key[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-" + iam_key[1])
    with pytest.raises(RemoteAuthError) as caught:
        open_storage(s3.url("agents/x")).get("manifest.json")
    assert "SignatureDoesNotMatch" in str(caught.value.__cause__)


def test_a_wrong_secret_ends_a_push_with_exit_7_and_one_line(
    tmp_path: Path, s3: S3Bucket, iam_key: tuple[str, str]
) -> None:
    """A whole ``memfs push`` process: one line on stderr naming the remote, exit 7."""
    agent = memfs.init(tmp_path / "agent")
    add_remote(agent.history, "origin", s3.url("agents/x"))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": iam_key[0], "AWS_SECRET_ACCESS_KEY": "wrong"}
    result = memfs_process("-C", str(agent.root), "push", env=env)
    assert result.returncode == 7, result.stderr
    assert result.stderr.count("\n") == 1 and "refused the credentials" in result.stderr
    assert "Traceback" not in result.stderr and s3.url("agents/x") in result.stderr


def test_credentials_from_a_profile_in_the_shared_files(
    tmp_path: Path, s3: S3Bucket, iam_key: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_PROFILE picks a credentials-file section; the config file's region is used."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n"
        f"[work]\naws_access_key_id = {iam_key[0]}\naws_secret_access_key = {iam_key[1]}\n"
    )
    config = tmp_path / "config"
    config.write_text("[profile work]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "work")
    assert resolve({}).region == "eu-west-1"
    storage = open_storage(s3.url("agents/x"))
    assert storage.put_if_absent("memfs.json", b"{}") and storage.get("memfs.json")
    monkeypatch.delenv("AWS_PROFILE")
    with pytest.raises(RemoteAuthError):
        open_storage(s3.url("agents/x")).get("memfs.json")


def test_credentials_come_in_botocores_order(tmp_path: Path) -> None:
    """Options, then the environment (unless the options name a profile), then the files;
    what needs botocore's chain is left to it."""
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = file\naws_secret_access_key = s\n"
        "[p]\naws_access_key_id = p-file\naws_secret_access_key = s\n"
    )
    (tmp_path / "config").write_text(
        "[profile p]\nregion = eu-west-3\n[profile role]\nrole_arn = arn:aws:iam::1:role/r\n"
        "source_profile = p\n[profile bare]\nregion = eu-west-1\n"
    )
    files = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
    }
    keys = {"AWS_ACCESS_KEY_ID": "env", "AWS_SECRET_ACCESS_KEY": "s"}

    def key_of(options: dict[str, str], env: dict[str, str]) -> str:
        credentials = resolve(options, {**files, **env}).credentials
        return credentials.access_key if credentials else "anonymous"

    assert key_of({"key": "option", "secret": "s"}, keys) == "option"
    assert key_of({}, keys) == "env"
    assert key_of({}, {**keys, "AWS_PROFILE": "p"}) == "env"
    assert key_of({"profile": "p"}, keys) == "p-file"
    assert key_of({}, {}) == "file"
    assert key_of({"anon": "1"}, keys) == "anonymous"
    assert resolve({}, {**files, "AWS_PROFILE": "p"}).region == "eu-west-3"
    assert resolve({}, {**files, "AWS_REGION": "ap-south-1"}).host == "s3.ap-south-1.amazonaws.com"
    with pytest.raises(NeedsBotocore):
        resolve({}, {**files, "AWS_PROFILE": "role"})
    with pytest.raises(NeedsBotocore):
        resolve({"profile": "bare"}, {**files, "AWS_EC2_METADATA_DISABLED": "false"})
    with pytest.raises(NoCredentials):
        resolve({"profile": "bare"}, {**files, "AWS_EC2_METADATA_DISABLED": "true"})
    with pytest.raises(NeedsBotocore):
        resolve({"requester_pays": True}, {**files, **keys})
    with pytest.raises(NeedsBotocore):
        resolve({"config_kwargs": {"proxies": {"https": "http://p:1"}}}, {**files, **keys})
    assert resolve({"config_kwargs": {"connect_timeout": 5}}, {**files, **keys}).credentials


@pytest.mark.parametrize(
    ("env", "thin"),
    [
        ({"HTTPS_PROXY": "http://proxy:3128"}, False),
        ({"HTTP_PROXY": "http://proxy:3128"}, True),  # botocore uses it for http:// only
        ({"http_proxy": "http://proxy:3128", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, False),
        (
            {
                "HTTP_PROXY": "http://p:1",
                "NO_PROXY": "127.0.0.1",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            },
            True,
        ),
        ({"AWS_CA_BUNDLE": "/etc/ssl/private-ca.pem"}, True),
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, False),
    ],
)
def test_a_proxy_or_fips_goes_to_botocore(tmp_path: Path, env: dict[str, str], thin: bool) -> None:
    """Transport settings the thin client does not act on are left to botocore."""
    environ = {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        **env,
    }
    if thin:
        assert resolve({}, environ).ca_bundle == env.get("AWS_CA_BUNDLE")
    else:
        with pytest.raises(NeedsBotocore):
            resolve({}, environ)


def test_settings_only_botocore_can_act_on_fall_back_to_s3fs(
    tmp_path: Path, s3: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credential_process profile still reaches the bucket, through s3fs."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    keys = {"Version": 1, "AccessKeyId": "testing", "SecretAccessKey": "testing"}
    config = tmp_path / "config"
    config.write_text(f"[profile tool]\ncredential_process = echo '{json.dumps(keys)}'\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "tool")
    storage = open_storage(s3.url("agents/x"))
    assert type(storage).__name__ == "S3FsStorage"
    assert storage.put_if_absent("memfs.json", b"{}")
    assert storage.get("memfs.json") is not None


def test_two_writers_one_wins(s3: S3Bucket) -> None:
    """Create-only and compare-and-swap are decided by S3: of two writers one wins."""
    first, second = open_storage(s3.url("a")), open_storage(s3.url("a"))
    assert first.put_if_absent("manifest.json", b"1")
    assert not second.put_if_absent("manifest.json", b"2")
    _, etag = first.get("manifest.json")  # type: ignore[misc]
    assert first.put_if_match("manifest.json", b"3", etag)
    assert not second.put_if_match("manifest.json", b"4", etag)
    assert second.get("manifest.json")[0] == b"3"  # type: ignore[index]
    assert not first.put_if_match("absent.json", b"5", etag), "nothing there has that etag"
    assert first.get("absent.json") is None


def test_an_unchanged_object_costs_no_body(s3: S3Bucket) -> None:
    storage = open_storage(s3.url("a"))
    assert isinstance(storage, S3Storage) and storage.client is not None
    storage.put_if_absent("manifest.json", b"x" * 1000)
    _, etag = storage.get("manifest.json")  # type: ignore[misc]
    assert storage.get_if_changed("manifest.json", etag) is UNCHANGED
    answer = storage.client.get(s3.name, "a/manifest.json", if_none_match=etag)
    assert (answer.status, answer.body) == (304, b"")
    storage.put_if_match("manifest.json", b"y", etag)
    assert storage.get_if_changed("manifest.json", etag) == storage.get("manifest.json")
    assert storage.get_if_changed("gone.json", etag) is None


def test_a_listing_over_1000_keys_is_read_page_by_page(s3: S3Bucket) -> None:
    """1,001 objects (written into moto's backend directly: 1,001 PUTs would take seconds)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    storage = open_storage(s3.url("a"))
    names = [f"packs/pack-{i:04}.idx" for i in range(1001)]
    for name in names:
        backend.put_object(s3.name, f"a/{name}", b"")
    s3.server.requests.clear()
    assert storage.list("packs") == names
    assert s3.server.count("GET") == 2, "1,000 keys a page"


def test_an_unreachable_endpoint(s3: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RemoteUnreachableError, match="Could not connect; nothing was lost"):
        open_storage(s3.url("a")).get("manifest.json")


@pytest.mark.parametrize("kind", ["500-before", "reset-before", "500-after"])
def test_a_failed_request_is_retried(
    s3: S3Bucket, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """One 500 or dropped connection, then the same request succeeds on its own."""
    open_storage(s3.url("a")).put_if_absent("memfs.json", b"{}")
    with fault_proxy(s3.server.endpoint, rate=1.0) as proxy:
        proxy.kinds = (kind,)
        choose = proxy.choose_fault

        def once() -> str | None:
            fault = choose()
            proxy.enabled = fault is None and proxy.enabled
            return fault

        proxy.choose_fault = once  # type: ignore[method-assign]
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        assert open_storage(s3.url("a")).get("memfs.json") == open_storage(s3.url("a")).get(
            "memfs.json"
        )
        assert proxy.counts[kind] == 1 and proxy.requests == 3


@contextlib.contextmanager
def tls_in_front_of(endpoint: str, folder: Path) -> Iterator[tuple[str, Path]]:
    """An https endpoint on 127.0.0.1 (a self-signed certificate) passing bytes to
    ``endpoint``; yields its URL and the certificate to trust."""
    import socket
    import ssl
    import threading
    from urllib.parse import urlsplit

    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    upstream = urlsplit(endpoint)
    listener = socket.create_server(("127.0.0.1", 0))

    def pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            try:
                client = context.wrap_socket(raw, server_side=True)
            except OSError:
                raw.close()  # the client refused the certificate
                continue
            server = socket.create_connection((upstream.hostname, upstream.port))
            for ends in ((client, server), (server, client)):
                threading.Thread(target=pipe, args=ends, daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}", cert
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        listener.close()
        thread.join(timeout=10)


def test_https_with_a_ca_bundle(
    tmp_path: Path, s3: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS to a custom endpoint: its certificate trusted through AWS_CA_BUNDLE, refused
    (one clear line, not retried) without it."""
    with tls_in_front_of(s3.server.endpoint, tmp_path) as (endpoint, cert):
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
        storage = open_storage(s3.url("a"))
        assert storage.put_if_absent("k", b"over tls") and storage.get("k")[0] == b"over tls"  # type: ignore[index]
        monkeypatch.delenv("AWS_CA_BUNDLE")
        requests = len(s3.server.requests)
        with pytest.raises(
            RemoteUnreachableError,
            match=re.escape("certificate was refused (self-signed certificate); set AWS_CA_BUNDLE"),
        ):
            open_storage(s3.url("a")).get("k")
        assert len(s3.server.requests) == requests


def test_fsspec_is_not_imported_for_s3_and_file_urls(tmp_path: Path) -> None:
    """Opening an s3:// or file:// store loads neither fsspec nor s3fs nor botocore."""
    code = (
        "import sys\n"
        "from memfs.remotes.storage import open_storage\n"
        f"open_storage('s3://bucket/a', {{'key': 'k', 'secret': 's'}})\n"
        f"open_storage({tmp_path.as_uri()!r})\n"
        "print(sorted(m for m in ('fsspec', 's3fs', 'botocore', 'aiohttp') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_keep_alive_connections_are_reused(s3: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests in one thread share a connection (through the proxy: an HTTP/1.1 server;
    the moto server speaks HTTP/1.0 and closes every connection itself)."""
    with fault_proxy(s3.server.endpoint, rate=0.0) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        storage = open_storage(s3.url("a"))
        assert isinstance(storage, S3Storage) and isinstance(storage.client, S3Client)
        storage.put_if_absent("k", b"v")
        [connection] = storage.client.kept.idle(storage.client.config.host)
        for _ in range(3):
            assert storage.get("k") is not None
        assert storage.client.kept.idle(storage.client.config.host) == [connection]
        assert proxy.requests == 4


def test_a_connection_one_thread_is_done_with_serves_the_next(
    s3: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request on another thread after the caller's (a push's presence record, a pull's
    pack fetched by the pool) goes on the connection the caller warmed, not a new one (a
    TLS handshake more on S3); two threads at once each have their own."""
    import threading

    with fault_proxy(s3.server.endpoint, rate=0.0) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        storage = open_storage(s3.url("a"))
        assert isinstance(storage, S3Storage) and isinstance(storage.client, S3Client)
        host = storage.client.config.host
        storage.put_if_absent("k", b"v")
        [connection] = storage.client.kept.idle(host)
        got: list[object] = []
        thread = threading.Thread(target=lambda: got.append(storage.get("k")))
        thread.start()
        thread.join(timeout=30)
        assert got and got[0] is not None
        assert storage.client.kept.idle(host) == [connection]
        # two at once: the second cannot have the connection the first holds
        first = storage.client.kept.take(host)
        assert first is connection and storage.client.kept.idle(host) == []
        assert storage.get("k") is not None  # on a new connection, kept afterwards
        [second] = storage.client.kept.idle(host)
        assert second is not connection
        storage.client.kept.give(host, connection)
        assert storage.get("k") is not None  # the most recently kept serves next
        assert storage.client.kept.idle(host) == [second, connection]
        assert proxy.requests == 4


@contextlib.contextmanager
def answering(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> Iterator[str]:
    """An endpoint that answers every request ``status`` with ``body`` and ``headers`` (a
    captive portal, a proxy's page, a broken cache): what a user behind one sees, not S3."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True  # a kept-alive connection must not hold up shutdown
    with serving(server) as endpoint:
        yield endpoint


@pytest.mark.parametrize("body", [b"hello", b"<html><body>Sign in</body></html>"])
def test_a_listing_that_is_not_s3s_xml_is_a_remote_error(
    s3: S3Bucket, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    """Not a traceback (exit 70), nor an empty listing read as 'no agents' or 'no packs'."""
    from memfs.errors import RemoteError

    with answering(200, body) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        storage = open_storage(s3.url("a"))
        with pytest.raises(RemoteError, match="not an S3 listing"):
            storage.list("packs")
        with pytest.raises(RemoteError, match="not an S3 listing"):
            storage.folders()


def test_not_modified_to_a_read_that_set_no_condition_is_a_remote_error(
    s3: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 304 to a plain GET (a broken cache in the way) was an AssertionError: exit 70."""
    from memfs.errors import RemoteError

    with answering(304) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        storage = open_storage(s3.url("a"))
        with pytest.raises(RemoteError, match="304"):
            storage.get("manifest.json")
        assert storage.get_if_changed("manifest.json", '"abc"') is UNCHANGED


def test_a_listing_that_never_advances_is_a_remote_error(
    s3: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that answers every page 'truncated, continue at T' with the same T: memfs
    (gc --remote, agents, a push's compaction) listed it forever."""
    from memfs.errors import RemoteError

    page = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Contents><Key>a/packs/pack-1.pack</Key></Contents>"
        b"<IsTruncated>true</IsTruncated><NextContinuationToken>same</NextContinuationToken>"
        b"</ListBucketResult>"
    )
    with answering(200, page) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        with pytest.raises(RemoteError, match="does not advance"):
            open_storage(s3.url("a")).list("packs")


def test_a_last_modified_that_is_not_a_date_is_unknown(
    s3: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store's garbled Last-Modified was a ValueError: exit 70 from a push's automatic
    compaction (after the push had landed), or from gc --remote. Unknown, the pack is kept."""
    with answering(200, headers={"Last-Modified": "yesterday-ish"}) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        assert open_storage(s3.url("a")).modified("packs/pack-1.pack") is None
