"""A thin S3 client on the standard library: what memfs asks of S3, at a Python start-up's cost.

s3fs, aiobotocore and aiohttp cost ~0.4 s of imports and client set-up in every ``memfs
push/pull/clone`` process (benchmarks/bench_s3stack.py); memfs makes six kinds of request,
so this client makes them itself: HTTP/1.1 with kept-alive connections per host shared by
the threads (``s3http.KeptConnections``), AWS Signature Version 4 with ``memfs.digests``
(botocore's ``S3SigV4Auth``: the payload's sha256 is always signed, object keys are sent
and signed percent-encoded once),
and botocore's standard retry mode (up to 4 attempts on 500/502/503/504, throttling and
dropped connections, with jittered exponential backoff; connect timeout 5 s).

HTTP itself is ``memfs/remotes/s3http.py``: ``http.client`` costs ~15 ms to import.

Addressing: path style (``/bucket/key``) for a custom endpoint, virtual-hosted style
(``bucket.s3.<region>.amazonaws.com``) on AWS for bucket names valid as DNS labels, as
botocore chooses. Without a configured region a request to AWS that S3 answers with
``x-amz-bucket-region`` is re-signed for that region and sent again.

Errors are ``S3Error`` (S3 answered: status, code, message) or ``S3ConnectionError`` (no
answer); ``memfs/remotes/s3storage.py`` maps them to memfs's errors.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote

from memfs.digests import hmac_sha256, sha256_hex
from memfs.record import Record
from memfs.remotes.s3config import S3Config
from memfs.remotes.s3http import (
    BadAnswer,
    Closed,
    Connection,
    KeptConnections,
    http_date,
    iso_date,
)
from memfs.util import LazyPattern

TYPE_CHECKING = False  # typing costs an S3 push ~2 ms to import
if TYPE_CHECKING:
    import ssl
    from concurrent.futures import Executor
    from typing import Any

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # of b""
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
IDLE_REUSE = 15.0  # seconds: an idler connection may have been dropped by S3 or a NAT
MAX_ATTEMPTS = 4
IDLE_KEPT = 16  # idle connections kept per host: the pool's threads and the caller's
POOL_THREADS = 8  # concurrent GETs of one get_many
RETRY_STATUSES = {500, 502, 503, 504, 429}
RETRY_CODES = {
    "InternalError", "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "SlowDown", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "RequestThrottled", "ServiceUnavailable",
}  # fmt: skip
_DNS_BUCKET = LazyPattern(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class S3Error(Exception):
    """S3 answered with an error."""

    def __init__(self, status: int, code: str, message: str, region: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status = status
        self.code = code
        self.message = message
        self.region = region  # x-amz-bucket-region, when S3 says the bucket is elsewhere


class S3ConnectionError(Exception):
    """No answer: the connection was refused, dropped or timed out (retried), or TLS failed
    (a certificate refused: not retried)."""

    def __init__(self, why: str, retryable: bool = True) -> None:
        super().__init__(why)
        self.retryable = retryable


class Response(Record):
    """One answer: status, headers (lower-case names) and body."""

    __slots__ = _fields = ("status", "headers", "body")
    status: int
    headers: dict[str, str]
    body: bytes

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def sign(
    config: S3Config,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    payload_sha256: str,
    now: time.struct_time | None = None,
    region: str | None = None,
) -> None:
    """Add SigV4's ``x-amz-date``, ``x-amz-content-sha256``, token and ``Authorization``
    headers to ``headers`` (which must hold ``host``); ``path`` and ``query`` are as sent."""
    credentials = config.credentials
    if credentials is None:
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", now or time.gmtime())
    headers["x-amz-date"] = stamp
    headers["x-amz-content-sha256"] = payload_sha256
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    signed = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    names = sorted(signed)
    canonical = "\n".join([
        method,
        path,
        canonical_query(query),
        "".join(f"{name}:{signed[name]}\n" for name in names),
        ";".join(names),
        payload_sha256,
    ])  # fmt: skip
    scope = f"{stamp[:8]}/{region or config.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, sha256_hex(canonical.encode())])
    key = ("AWS4" + credentials.secret_key).encode()
    for part in scope.split("/"):
        key = hmac_sha256(key, part.encode())
    signature = hmac_sha256(key, to_sign.encode()).hex()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )


def canonical_query(query: str) -> str:
    """The query string with its (already encoded) pairs sorted, as SigV4 wants it."""
    if not query:
        return ""
    pairs = [pair.partition("=") for pair in query.split("&")]
    return "&".join(f"{key}={value}" for key, _, value in sorted(pairs))


def encode_query(params: dict[str, str]) -> str:
    """``params`` URI-encoded the SigV4 way (only unreserved characters left as they are)."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in params.items())


class S3Client:
    """Requests to one S3 endpoint, safe to share between threads."""

    def __init__(self, config: S3Config, kept: KeptConnections | None = None) -> None:
        self.config = config
        self.kept = KeptConnections(IDLE_REUSE, IDLE_KEPT) if kept is None else kept
        self._regions: dict[str, str] = {}
        self._pool: Executor | None = None
        self._pool_lock = threading.Lock()
        self._ssl_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"S3Client(config={self.config!r})"

    def request(
        self,
        method: str,
        bucket: str,
        key: str = "",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        ok: tuple[int, ...] = (200,),
    ) -> Response:
        """Send one request (retried as botocore's standard mode does); a status outside
        ``ok`` raises ``S3Error``."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self._send(method, bucket, key, params, headers, body)
                if response.status in ok:
                    return response
                error = _error(response)
                wrong_region = error.region and error.region != self._region(bucket)
                if wrong_region and not self.config.region_fixed and bucket not in self._regions:
                    self._regions[bucket] = error.region  # type: ignore[assignment]
                    continue  # signed for the wrong region: once more, for the right one
                retryable = response.status in RETRY_STATUSES or error.code in RETRY_CODES
            except S3ConnectionError as dropped:
                error, retryable = dropped, dropped.retryable  # type: ignore[assignment]
            if not retryable or attempt == MAX_ATTEMPTS:
                raise error
            import random  # only a retry waits: its jitter

            time.sleep(min(20.0, random.random() * 0.5 * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")

    def _region(self, bucket: str) -> str:
        return self._regions.get(bucket, self.config.region)

    def _address(self, bucket: str, key: str) -> tuple[str, str]:
        """(host, path) for an object, in the addressing style of this endpoint."""
        encoded = quote(key, safe="/~")
        region = self._region(bucket)
        if self.config.path_style:
            return self.config.host, f"/{bucket}/{encoded}" if key else f"/{bucket}"
        host = self.config.host
        if region != self.config.region:
            host = f"s3.{region}.amazonaws.com"
        if _DNS_BUCKET.match(bucket) and "--" not in bucket:
            return f"{bucket}.{host}", f"/{encoded}"
        return host, f"/{bucket}/{encoded}" if key else f"/{bucket}"

    def _send(
        self,
        method: str,
        bucket: str,
        key: str,
        params: dict[str, str] | None,
        extra: dict[str, str] | None,
        body: bytes,
    ) -> Response:
        host, path = self._address(bucket, key)
        query = encode_query(params or {})
        headers = {"host": host, **(extra or {})}
        payload = sha256_hex(body) if body else EMPTY_SHA256
        sign(self.config, method, path, query, headers, payload, region=self._region(bucket))
        target = f"{path}?{query}" if query else path
        for fresh in (False, True):
            connection, reused = self._connection(host, fresh)
            try:
                answer = connection.request(method, target, headers, body)
            except OSError as error:
                connection.close()
                if reused and not fresh and _stale(error):
                    continue  # a kept-alive connection the server had closed: once more
                raise S3ConnectionError(_why(error)) from error
            if answer.will_close:
                connection.close()
            else:
                self.kept.give(host, connection)
            return Response(answer.status, answer.headers, answer.body)
        raise AssertionError("unreachable")

    def _connection(self, host: str, fresh: bool) -> tuple[Connection, bool]:
        """A kept-alive connection to ``host`` no thread is using, or a new one (``fresh``:
        always); and whether it served before. The caller's alone until given back."""
        kept = None if fresh else self.kept.take(host)
        if kept is not None:
            return kept, True
        tls = self._tls() if self.config.scheme == "https" else None
        connection = Connection(host, CONNECT_TIMEOUT, tls)
        try:
            connection.connect()
        except OSError as error:
            if getattr(error, "verify_message", None):  # ssl.SSLCertVerificationError
                why = f"its certificate was refused ({error.verify_message})"  # type: ignore[attr-defined]
                raise S3ConnectionError(f"{why}; set AWS_CA_BUNDLE to trust it", False) from error
            if type(error).__module__ == "ssl":
                why = getattr(error, "reason", None) or error
                raise S3ConnectionError(f"TLS failed: {why}", False) from error
            raise S3ConnectionError("Could not connect") from error
        if connection.sock is not None:
            connection.sock.settimeout(READ_TIMEOUT)
        return connection, False

    def _tls(self) -> ssl.SSLContext:
        """One TLS context per client: loading the CA certificates costs ~10 ms each time."""
        with self._pool_lock:
            if self._ssl_context is None:
                import ssl

                self._ssl_context = ssl.create_default_context(cafile=self.config.ca_bundle)
            return self._ssl_context

    def close(self) -> None:
        """Close the kept-alive connections."""
        self.kept.close()

    # The operations memfs uses.

    def get(self, bucket: str, key: str, if_none_match: str | None = None) -> Response:
        """GET an object: 200 with its body, 304 when ``if_none_match`` still holds, 404."""
        headers = {"if-none-match": if_none_match} if if_none_match else None
        response = self.request("GET", bucket, key, headers=headers, ok=(200, 304, 404))
        if response.status == 404 and _error(response).code == "NoSuchBucket":
            raise _error(response)
        return response

    def put(self, bucket: str, key: str, data: bytes, **conditions: str) -> bool:
        """PUT an object; False when a condition (``if_none_match="*"``, ``if_match=etag``)
        failed: S3's 412 PreconditionFailed or 409 ConditionalRequestConflict, or, for
        ``if_match``, 404 NoSuchKey (nothing there has that etag)."""
        headers = {name.replace("_", "-"): value for name, value in conditions.items()}
        response = self.request(
            "PUT", bucket, key, headers=headers, body=data, ok=(200, 404, 409, 412)
        )
        if response.status in (404, 409):
            error = _error(response)
            lost = "ConditionalRequestConflict" if response.status == 409 else "NoSuchKey"
            if error.code != lost or (lost == "NoSuchKey" and "if-match" not in headers):
                raise error
        return response.status == 200

    def pool(self) -> Executor:
        """Threads for concurrent requests, kept (with their connections) for the next batch."""
        with self._pool_lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="memfs-s3")
            return self._pool

    def head(self, bucket: str, key: str) -> Response | None:
        """HEAD an object: its headers, or None if absent."""
        response = self.request("HEAD", bucket, key, ok=(200, 404))
        return None if response.status == 404 else response

    def delete(self, bucket: str, key: str) -> None:
        """DELETE an object (absent is fine)."""
        self.request("DELETE", bucket, key, ok=(200, 204, 404))

    def list(self, bucket: str, prefix: str, delimiter: str = "") -> Iterator[tuple[str, bool]]:
        """(key, is_folder) for each object, and each common prefix when ``delimiter`` is
        given, under ``prefix``; ListObjectsV2 page by page (1,000 a page)."""
        from urllib.parse import unquote_plus

        for _, page in self._pages(bucket, prefix, delimiter):
            for element in page:
                name = element.tag.rsplit("}", 1)[-1]
                if name in ("Contents", "CommonPrefixes"):
                    text = _child(element, "Key" if name == "Contents" else "Prefix")
                    yield unquote_plus(text), name == "CommonPrefixes"

    def list_stamped(self, bucket: str, prefix: str) -> tuple[list[tuple[str, float, int]], float]:
        """[(key, LastModified, Size)] under ``prefix`` and the store's clock: the ``Date``
        header of the listing's first answer (so ages need no client clock)."""
        from urllib.parse import unquote_plus

        entries: list[tuple[str, float, int]] = []
        store_now: float | None = None
        for response, page in self._pages(bucket, prefix, ""):
            if store_now is None:
                store_now = http_date(response.headers.get("date", ""))
            for element in page:
                if element.tag.rsplit("}", 1)[-1] == "Contents":
                    key = unquote_plus(_child(element, "Key"))
                    stamp = iso_date(_child(element, "LastModified"))
                    size = _child(element, "Size")
                    entries.append((key, stamp or 0.0, int(size) if size.isdigit() else 0))
        if store_now is None:  # no Date header (HTTP requires one): the newest object's time
            store_now = max((mtime for _, mtime, _ in entries), default=0.0) or time.time()
        return entries, store_now

    def _pages(self, bucket: str, prefix: str, delimiter: str) -> Iterator[tuple[Response, Any]]:
        """Each ListObjectsV2 answer and its parsed XML root, following continuation tokens."""
        from xml.etree import ElementTree

        params = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
        if delimiter:
            params["delimiter"] = delimiter
        seen: set[str] = set()
        while True:
            response = self.request("GET", bucket, params=params)
            try:
                page = ElementTree.fromstring(response.body)
            except ElementTree.ParseError:
                page = None
            if page is None or page.tag.rsplit("}", 1)[-1] != "ListBucketResult":
                # a proxy's or captive portal's page: an error, never read as "nothing there"
                raise S3Error(response.status, "InvalidResponse", "not an S3 listing")
            yield response, page
            token = _child(page, "NextContinuationToken")
            if _child(page, "IsTruncated") != "true" or not token:
                return
            if token in seen:  # a broken store sending a page again: it would never end
                raise S3Error(response.status, "InvalidResponse", "the listing does not advance")
            seen.add(token)
            params["continuation-token"] = token


def _child(element: object, name: str) -> str:
    for child in element:  # type: ignore[attr-defined]
        if child.tag.rsplit("}", 1)[-1] == name:
            return str(child.text or "")
    return ""


def _error(response: Response) -> S3Error:
    """The S3 error in an answer's XML body (a HEAD's has none: the status stands for it)."""
    code = message = ""
    if response.body.lstrip().startswith(b"<"):
        from xml.etree import ElementTree

        try:
            root = ElementTree.fromstring(response.body)
            code, message = _child(root, "Code"), _child(root, "Message")
        except ElementTree.ParseError:
            pass
    code = code or {404: "NoSuchKey", 403: "AccessDenied", 412: "PreconditionFailed"}.get(
        response.status, str(response.status)
    )
    message = " ".join(message.split())[:200].rstrip(".")
    return S3Error(response.status, code, message, response.headers.get("x-amz-bucket-region"))


def _stale(error: BaseException) -> bool:
    """Whether ``error`` is what a kept-alive connection the server closed looks like."""
    return isinstance(error, (Closed, BrokenPipeError, ConnectionResetError, BadAnswer))


def _why(error: BaseException) -> str:
    """One short phrase for a connection failure."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "unknown host"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "no answer in time"
    if isinstance(error, (Closed, ConnectionResetError)):
        return "the connection was closed before an answer"
    return str(error) or type(error).__name__
