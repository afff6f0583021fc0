"""git's smart protocol (v0/v1, stateless RPC) over an agent's cached repository.

dulwich's own protocol handlers (``dulwich.server``) speak the wire format; what they are
shown is narrowed here: ``ServedRepo`` presents the cached repository with only the refs the
server chooses to advertise (the agent's branch and HEAD, at the bucket's head), and a push's
ref updates never touch the cached repository's refs: ``receive`` stores the client's pack
(objects only, checksum verified by dulwich) and hands the ref commands to a callback that
decides each one (the bucket's compare-and-swap, in ``gitpush``).

Each function takes the whole request body and returns the whole response body: git's
requests and a memory repository's packs are small, and a handler that ran on a thread
against a half-read socket would hold the agent's lock for as long as the client dawdles.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dulwich.object_store import PackBasedObjectStore
from dulwich.objects import ObjectID
from dulwich.protocol import (
    CAPABILITY_ATOMIC,
    CAPABILITY_FILTER,
    ZERO_SHA,
    Protocol,
    ReceivableProtocol,
    pkt_line,
)
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.server import Backend, ReceivePackHandler, UploadPackHandler

UPLOAD_PACK = "git-upload-pack"
RECEIVE_PACK = "git-receive-pack"
SERVICES = (UPLOAD_PACK, RECEIVE_PACK)


@dataclass(frozen=True)
class RefUpdate:
    """One ref command of a push: ``old`` is what the client saw, None for "no such ref";
    ``new`` is None for a deletion."""

    ref: str
    old: str | None
    new: str | None


Decide = Callable[[list[RefUpdate], bool], list[str | None]]
"""Given a push's ref commands and whether the client asked for an atomic push, the outcome
of each: None for done, else the reason git prints after ``ng``."""


class _Symrefs:
    """The one attribute of a refs container the handlers read: the symbolic refs."""

    def __init__(self, symrefs: dict[Ref, Ref]) -> None:
        self._symrefs = symrefs

    def get_symrefs(self) -> dict[Ref, Ref]:
        return dict(self._symrefs)


class ServedRepo:
    """The cached repository as dulwich's handlers see it: its objects, the chosen refs."""

    def __init__(self, repo: Repo, refs: Mapping[str, str], symrefs: Mapping[str, str]) -> None:
        self._repo = repo
        self._refs = {Ref(name.encode()): ObjectID(sha.encode()) for name, sha in refs.items()}
        self.refs = _Symrefs({Ref(k.encode()): Ref(v.encode()) for k, v in symrefs.items()})
        self.hooks: dict[str, Any] = {}  # no server-side hooks: the cache's never run

    @property
    def object_store(self) -> PackBasedObjectStore:
        return self._repo.object_store

    @property
    def object_format(self) -> Any:
        return self._repo.object_format

    def get_refs(self) -> dict[Ref, ObjectID]:
        return dict(self._refs)

    def get_peeled(self, ref: Ref) -> ObjectID | None:
        return self._refs.get(ref)  # no tags are served: a ref is its own peeled value

    def find_missing_objects(self, *args: Any, **kwargs: Any) -> Any:
        # Repo's implementation reads only get_refs() and object_store: ours, narrowed.
        return Repo.find_missing_objects(self, *args, **kwargs)  # type: ignore[arg-type]


class _OneRepo(Backend):
    """A backend that serves one repository, whatever path the handler asks for."""

    def __init__(self, repo: ServedRepo) -> None:
        self.repo = repo

    def open_repository(self, path: str) -> Any:
        return self.repo


def branch_refs(branch: str, head: str | None) -> dict[str, str]:
    """The refs a memfs agent serves: its branch and HEAD (pointing at it), at ``head``."""
    return {} if head is None else {"HEAD": head, f"refs/heads/{branch}": head}


def advertisement(repo: Repo, service: str, refs: Mapping[str, str], branch: str) -> bytes:
    """The body of ``GET info/refs?service=...``: the service line, then the refs."""
    out = io.BytesIO()
    out.write(pkt_line(f"# service={service}\n".encode()) + pkt_line(None))
    proto = Protocol(io.BytesIO().read, out.write)
    if service == UPLOAD_PACK:
        served = ServedRepo(repo, refs, {"HEAD": f"refs/heads/{branch}"} if refs else {})
        _UploadPack(
            _OneRepo(served), ["."], proto, stateless_rpc=True, advertise_refs=True
        ).handle()
    else:
        served = ServedRepo(repo, {k: v for k, v in refs.items() if k != "HEAD"}, {})
        _ReceivePack(
            _OneRepo(served), ["."], proto, stateless_rpc=True, advertise_refs=True
        ).handle()
    return out.getvalue()


def wanted(body: bytes) -> list[str]:
    """The shas of the ``want`` lines at the start of an upload-pack request."""
    found: list[str] = []
    for line in _pkt_lines(body):
        if line is None or not line.startswith(b"want "):
            break
        found.append(line[5:45].decode("ascii", "replace"))
    return found


def _pkt_lines(body: bytes) -> Iterator[bytes | None]:
    """The pkt-lines of ``body`` (None for a flush), until the first malformed one."""
    at = 0
    while at + 4 <= len(body):
        try:
            size = int(body[at : at + 4], 16)
        except ValueError:
            return
        if size == 0:
            yield None
            at += 4
            continue
        if size < 4 or at + size > len(body):
            return
        yield body[at + 4 : at + size]
        at += size


_NOT_A_CLONE = (b"have", b"shallow", b"deepen", b"deepen-since", b"deepen-not", b"filter")


def whole_clone(body: bytes) -> bool:
    """Whether an upload-pack request is a whole clone: wants and ``done``, nothing the answer
    would depend on besides the wanted commits (no have, shallow, deepen or filter line)."""
    lines = [line for line in _pkt_lines(body) if line is not None]
    words = [line.split(b" ", 1)[0].strip() for line in lines]
    return (
        bool(words)
        and words[0] == b"want"
        and words[-1] == b"done"
        and not any(word in _NOT_A_CLONE for word in words)
    )


class CloneCache:
    """Answers to whole-clone requests, by agent and request bytes, least recently used out
    first past ``max_bytes``. What a commit reaches never changes, so the same request always
    gets the same pack: sandboxes cloning an agent's memory as they start, one after another,
    cost the server one pack, not one each. A push moves the head, and with it the request."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._answers: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, agent: str, body: bytes) -> bytes | None:
        with self._lock:
            answer = self._answers.get((agent, body))
            if answer is not None:
                self._answers.move_to_end((agent, body))
                self.hits += 1
            return answer

    def put(self, agent: str, body: bytes, answer: bytes) -> None:
        if len(answer) + len(body) > self.max_bytes:
            return
        with self._lock:
            if (agent, body) in self._answers:
                return
            self._answers[(agent, body)] = answer
            self._bytes += len(answer) + len(body)
            while self._bytes > self.max_bytes:
                (_, old_body), old = self._answers.popitem(last=False)
                self._bytes -= len(old) + len(old_body)


def upload(repo: Repo, refs: Mapping[str, str], body: bytes) -> bytes:
    """The body of ``POST git-upload-pack``: acknowledgements and the pack of what is wanted.

    ``refs`` are what the client may want: the advertised tips, plus any commit of theirs
    the caller found reachable from them (a tip that moved on between the client's
    ``info/refs`` and this request: git's own stateless upload-pack allows those too)."""
    out = io.BytesIO()
    proto = Protocol(io.BytesIO(body).read, out.write)
    served = ServedRepo(repo, refs, {})
    _UploadPack(_OneRepo(served), ["."], proto, stateless_rpc=True).handle()
    return out.getvalue()


def receive(
    repo: Repo,
    refs: Mapping[str, str],
    body: bytes,
    decide: Decide,
    limits: tuple[int, int] | None = None,
) -> bytes:
    """The body of ``POST git-receive-pack``: store the pack, let ``decide`` settle each ref
    command, report each outcome as git expects (``ok`` / ``ng <ref> <reason>``).

    ``limits`` (the size cap of one object, of all of them) bound what the pack may inflate
    to, checked from its headers before anything is inflated (memfs/server/packlimit.py): a
    pack over them is an unpack error, nothing stored."""
    out = io.BytesIO()
    stream = io.BytesIO(body)
    proto = ReceivableProtocol(stream.read, out.write)
    served = ServedRepo(repo, refs, {})
    handler = _ReceivePack(_OneRepo(served), ["."], proto, stateless_rpc=True, decide=decide)
    if limits is not None:
        from memfs.server.packlimit import refusal

        handler.refused = refusal(body, *limits)
    handler.handle()
    return out.getvalue()


class _UploadPack(UploadPackHandler):
    """dulwich's upload-pack without partial clone (``filter``): a partial clone's later
    requests want single blobs by sha, which a server that serves only what its refs reach
    refuses; told nothing, git clones in full (with a warning that the filter was ignored)."""

    def capabilities(self) -> list[bytes]:
        return [cap for cap in super().capabilities() if cap != CAPABILITY_FILTER]

    def set_client_capabilities(self, caps: Iterable[bytes]) -> None:
        # git 2.39 still names ``filter`` in its want line after warning that the server
        # does not support it: ignored here as git ignores the filter, not refused.
        kept = [cap for cap in caps if not cap.startswith(CAPABILITY_FILTER)]
        super().set_client_capabilities(kept)


class _ReceivePack(ReceivePackHandler):
    """dulwich's receive-pack, with the ref updates handed to ``decide`` instead of being
    written to the repository: the bucket, not the cache, holds the agent's refs."""

    def __init__(self, *args: Any, decide: Decide | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decide: Decide = decide or (lambda updates, atomic: ["refused"] * len(updates))
        self.refused: str | None = None  # why the pack is not stored (packlimit), if it is not

    def _apply_pack(
        self, refs: list[tuple[ObjectID, ObjectID, Ref]]
    ) -> Iterator[tuple[bytes, bytes]]:
        zero = ZERO_SHA
        if any(new != zero for _, new, _ in refs):
            if self.refused is not None:
                yield (b"unpack", _one_line(self.refused))
                for _, _, ref in refs:
                    yield (ref, b"unpacker error")
                return
            try:
                self.repo.object_store.add_thin_pack(
                    self.proto.read, getattr(self.proto, "recv", None)
                )
            except Exception as error:  # checksum, truncated or malformed pack: dulwich's list
                yield (b"unpack", _one_line(str(error) or type(error).__name__))
                for _, _, ref in refs:
                    yield (ref, b"unpacker error")
                return
        yield (b"unpack", b"ok")
        updates = [
            RefUpdate(
                ref.decode("utf-8", "replace"),
                None if old == zero else old.decode(),
                None if new == zero else new.decode(),
            )
            for old, new, ref in refs
        ]
        outcomes = self.decide(updates, self.has_capability(CAPABILITY_ATOMIC))
        for (_, _, ref), reason in zip(refs, outcomes, strict=True):
            yield (ref, b"ok" if reason is None else _one_line(reason))


def _one_line(text: str) -> bytes:
    """A reason git prints on one line after the ref: no newlines, bounded length."""
    flat = " ".join(text.split())
    return flat[:200].encode("utf-8", "replace")
