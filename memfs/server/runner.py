"""Running ``memfs serve``: the listening address, the token rule, uvicorn in this process.

The server binds its socket itself, before anything is printed: the URL it announces is
already accepting connections (they queue until uvicorn takes them), so a caller that reads
the URL line never races the start-up, and ``--listen 127.0.0.1:0`` picks a free port.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memfs.errors import MemfsError

DEFAULT_LISTEN = "127.0.0.1:8283"  # Letta's own port, so LETTA_MEMFS_BASE_URL reads the same


def is_loopback_name(host: str) -> bool:
    """Whether ``host`` (no port, no brackets) names this machine's loopback: localhost,
    127.0.0.0/8 or ::1. Any other host name may resolve to anything, so it is not."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServeConfigError(MemfsError):
    """A ``memfs serve`` setting that cannot be used: bad address, open to the network (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Listen:
    """Where the server listens."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect (127.0.0.0/8, ::1, localhost)."""
        return is_loopback_name(self.host)

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port if port is None else port}"


@dataclass(frozen=True)
class Announcement:
    """What a server says once its socket accepts connections."""

    url: str  # http://host:port, no trailing slash
    cloud: str
    token_required: bool

    @property
    def line(self) -> str:
        access = "token required" if self.token_required else "open to this machine, no token"
        return f"memfs serve: cloud {self.cloud} at {self.url}/ ({access}; Ctrl-C stops)"


def parse_listen(text: str) -> Listen:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (loopback) as a ``Listen``."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ServeConfigError(f"--listen {text!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ServeConfigError(
                f"--listen {text!r}: give an IP address (127.0.0.1, 0.0.0.0, ::1), not a name"
            ) from None
    return Listen(host, int(port_text))


def bind(listen: Listen) -> socket.socket:
    """A listening TCP socket on ``listen`` (connections queue until the server takes them)."""
    host = "127.0.0.1" if listen.host == "localhost" else listen.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it a response's two writes wait out the client's delayed ACK (~40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, listen.port))
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise MemfsError(
            f"cannot listen on {listen.url()}: {error.strerror or error}"
            " (another server there? pick another port with --listen)"
        ) from error
    sock.set_inheritable(True)
    return sock


class _Stopper:
    """SIGTERM and SIGINT ask the server to stop (finishing requests in flight); a second one
    stops it without waiting. Installed before the URL is announced, so a signal that arrives
    while uvicorn starts still stops it cleanly."""

    def __init__(self) -> None:
        self.requested = 0
        self.server: Any = None

    def __call__(self, _sig: int, _frame: object) -> None:
        self.requested += 1
        if self.server is not None:
            self.server.should_exit = True
            self.server.force_exit = self.requested > 1

    @contextmanager
    def installed(self) -> Iterator[None]:
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, self)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run(app: object, sock: socket.socket, stopper: _Stopper, access_log: bool = True) -> None:
    """Serve ``app`` on ``sock`` with uvicorn in this process until ``stopper`` is signalled.

    uvicorn's own signal handling re-raises the signal after a graceful stop (the process then
    dies of it); ``memfs serve`` stops cleanly instead and exits 0."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the stopper's handlers are in place already

    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        access_log=access_log,
        log_level="info",
        lifespan="off",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    server = Server(config)
    stopper.server = server
    server.should_exit = stopper.requested > 0
    server.run(sockets=[sock])


def _encrypts(cloud: str) -> bool:
    """Whether the served cloud was added with ``--encrypt``: by its name, or for a URL given
    as ``--cloud``, any cloud added with that URL."""
    from memfs.cloud import cloud_encrypts
    from memfs.config import load_user_config

    if "://" not in cloud:
        return cloud_encrypts(cloud)
    url = cloud.rstrip("/")
    clouds = load_user_config().clouds.values()
    return any(c.encrypt and c.url.rstrip("/") == url for c in clouds)


def serve(
    cloud: str | None = None,
    listen: str = DEFAULT_LISTEN,
    token_file: Path | None = None,
    cache_dir: Path | None = None,
    access_log: bool = True,
    fresh_s: float | None = None,
    announce: Callable[[Announcement], None] = lambda said: print(said.line, flush=True),
) -> None:
    """Serve every agent of ``cloud`` on ``listen`` until SIGTERM or SIGINT.

    Tokens are required when the token file holds any when the server starts, and stay
    required while it runs (revoking every token locks everyone out; it never opens the
    server). A non-loopback address without tokens is refused: the agents' memory would be
    open to the network. ``announce`` is called once the socket accepts connections."""
    from memfs.config import resolve_cloud
    from memfs.server.agents import AgentCache, cache_dir_for
    from memfs.server.app import create_app
    from memfs.server.context import ServerContext
    from memfs.tokens import TokenChecker, default_token_file

    where = parse_listen(listen)
    name, url, options = resolve_cloud(cloud)
    checker = TokenChecker(token_file or default_token_file())
    tokens = checker.count()
    if checker.problem:
        raise ServeConfigError(checker.problem)
    if not where.loopback and tokens == 0:
        raise ServeConfigError(
            f"refusing to serve on {where.url()} without a token: anyone on the network could "
            "read and change the memory; create one with 'memfs token create', or listen on "
            "127.0.0.1"
        )
    agents = AgentCache(url, options, cache_dir or cache_dir_for(url), encrypt=_encrypts(name))
    if fresh_s is not None:
        agents.fresh_s = fresh_s
    ctx = ServerContext(name, url, options, agents, token_required=tokens > 0, tokens=checker)
    app = create_app(ctx)
    sock = bind(where)
    port = sock.getsockname()[1]
    stopper = _Stopper()
    with stopper.installed():
        announce(Announcement(where.url(port), name, tokens > 0))
        try:
            run(app, sock, stopper, access_log=access_log)
        finally:
            agents.stop_presence()  # 'memfs envs': this server's checkouts stopped cleanly
