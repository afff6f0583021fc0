"""moto's S3 (as tests/s3.py serves it) with each response's status and body size recorded.

What an idle watcher costs is requests and bytes: the counter of tests/s3.py gives the first,
this gives the second, and shows whether a conditional GET was answered 304 with no body.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from moto.moto_server.werkzeug_app import create_backend_app

from tests.s3 import MotoServer, _counting, serve_wsgi


@dataclass
class Served:
    """One request and what the server answered."""

    method: str
    path: str
    if_none_match: str | None
    status: int = 0
    body_bytes: int = 0


@dataclass
class MeteredServer(MotoServer):
    """A MotoServer that also keeps what each response carried."""

    served: list[Served] = field(default_factory=list)

    def body_bytes(self, contains: str = "") -> int:
        return sum(s.body_bytes for s in self.served if contains in s.path)


def _metered(app: Any, server: MeteredServer) -> Any:
    def metered(environ: dict[str, Any], start_response: Any) -> Any:
        record = Served(
            environ["REQUEST_METHOD"],
            environ.get("PATH_INFO", ""),
            environ.get("HTTP_IF_NONE_MATCH"),
        )

        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            record.status = int(status.split()[0])
            return start_response(status, headers, exc_info)

        body = b"".join(app(environ, start))
        record.body_bytes = len(body)
        server.served.append(record)
        return [body]

    return metered


@contextmanager
def metered_moto_s3() -> Iterator[MeteredServer]:
    """moto's S3 on a free port, counting requests and metering responses; stopped after."""
    holder = MeteredServer(endpoint="")
    with serve_wsgi(_metered(_counting(create_backend_app("s3"), holder), holder)) as endpoint:
        holder.endpoint = endpoint
        yield holder
