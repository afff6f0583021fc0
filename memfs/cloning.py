"""Checking an agent out from a URL (``memfs clone``, ``memfs checkout``): the fetch into an
empty repository, the work tree written, a clone that stopped midway recognised and
replaced (memfs.checkout).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from memfs.agent import Agent
from memfs.checkout import (
    UnfinishedCheckout,
    mark_finished,
    mark_started,
    only_a_fresh_repo,
    unfinished,
)
from memfs.errors import (
    MemfsError,
    RemoteCorruptError,
    RemoteNotFoundError,
)
from memfs.faults import crash_point
from memfs.history import History
from memfs.incoming import Progress, fetch_remote, remote_layout
from memfs.layout import Layout
from memfs.remotes import Remote, check_outside, open_remote, redact, resolve_url
from memfs.remotes.configure import add_remote
from memfs.schema import is_valid_branch, is_valid_name
from memfs.util import utc_now


def clone(
    url: str,
    directory: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    name: str | None = None,
    encrypt: bool = False,
    passphrase: str | None = None,
) -> Agent:
    """Check an agent out from ``url`` into ``directory`` (default: the URL's last part).

    With ``passphrase``, the store's passphrase slot is opened first and this machine given
    its own slot (memfs.keys.join_with_passphrase), so an encrypted agent clones on a
    machine nobody added, and later commands need no passphrase.

    A Letta Code memory repo (no agent.yaml) is recorded as one in ``.git/config``, named
    ``name`` (a cloud's name for it), else after its folder; nothing is added to its tree.

    A relative local path is taken from the current folder and stored absolute, so the
    remote means the same place from inside the agent. A folder left by a clone or checkout
    that stopped midway (see ``memfs.checkout``) is replaced, once every file in it is
    checked to be what that checkout wrote.
    """
    url = _folder_cloud(resolve_url(url, Path.cwd()))
    remote = open_remote(url, progress, encrypt=encrypt)
    root = Path(directory) if directory is not None else Path(_name_from_url(url))
    root = root.expanduser().resolve()
    check_outside(url, root)
    stale = unfinished(root) if root.is_dir() else None
    if stale is not None:
        _clear_unfinished(root, stale)
    elif root.is_dir() and only_a_fresh_repo(root):  # killed before its marker was written
        shutil.rmtree(root / ".git")
    created = not root.exists()
    if not created and (not root.is_dir() or any(root.iterdir())):
        raise MemfsError(f"{root} already exists and is not an empty folder")
    if passphrase is not None:  # before the folder exists: a wrong passphrase leaves none
        from memfs.keys import join_with_passphrase, storage_for_url

        join_with_passphrase(storage_for_url(url), passphrase)
    try:
        branch = remote.default_branch() or "main"
        if not is_valid_branch(branch):
            raise RemoteCorruptError(redact(url), f"its default branch {branch!r} is not a name")
        root.mkdir(parents=True, exist_ok=True)
        history = History.create(root)
        crash_point("clone.created")
        mark_started(root, redact(url), "")
        history.point_head_at(branch)
        # an encrypted agent is found so by the manifest read above (its stub), and recorded:
        # a plain manifest there later is refused as a downgrade
        found = bool(getattr(remote, "encrypted", False))
        config = add_remote(history, "origin", url, encrypt=encrypt or found)
        agent = Agent(root, history)
        sha = fetch_remote(agent, config, progress, remote)  # its manifest read: one GET less
        if sha is None:
            raise RemoteNotFoundError(redact(url), f"it has no branch {branch} to clone")
        mark_started(root, redact(url), sha)
        layout = remote_layout(history, sha)
        if layout is not None and layout.is_letta:
            _record_cloned_letta_repo(history, root, url, layout, name, remote)
        agent.check_out_fresh(sha, f"clone: from {redact(url)}")
        crash_point("checkout.finish")
        mark_finished(root)
        return agent
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:
            _empty_folder(root)
        raise


def _folder_cloud(url: str) -> str:
    """A ``file://`` URL (or path) of a folder holding an agent in object-store form (its
    ``memfs.json``, no git repository) is that folder cloud: ``memfs::file://...``."""
    from memfs.remotes import BUCKET_PREFIX, local_path, url_kind

    if url.startswith(BUCKET_PREFIX) or url_kind(url) != "git":
        return url
    path = local_path(url)
    if (
        path is None
        or not os.path.isabs(path)
        or not os.path.isfile(os.path.join(path, "memfs.json"))
    ):
        return url
    if os.path.exists(os.path.join(path, "HEAD")) or os.path.isdir(os.path.join(path, ".git")):
        return url
    return BUCKET_PREFIX + Path(path).as_uri()


def _record_cloned_letta_repo(
    history: History,
    root: Path,
    url: str,
    layout: Layout,
    name: str | None,
    remote: Remote | None = None,
) -> None:
    """A cloned Letta Code memory repo opens as one: who it is goes to ``.git/config``
    (``[memfs]``), as ``memfs init`` adopting one writes it; nothing is added to its tree. Its
    name is ``name`` (a cloud's name for it), else its folder's; its id is the Letta agent's
    when the URL names one (``letta://ID``, ``.../v1/git/ID/state.git``)."""
    from memfs.layout import letta_repo_name
    from memfs.opening import record_letta_identity
    from memfs.remotes import letta_agent_id

    letta_id = None
    with contextlib.suppress(MemfsError):
        letta_id = letta_agent_id(url)
    if letta_id is not None:
        created = utc_now().isoformat().replace("+00:00", "Z")
        history.set_config_values("memfs", {"id": letta_id, "created": created})
    else:  # a bucket names the agent it holds (memfs.json): every checkout is that agent
        identity = getattr(remote, "identity", lambda: None)()
        if identity is not None and identity.id:
            values = {"id": identity.id}
            values.update({"created": identity.created_at} if identity.created_at else {})
            history.set_config_values("memfs", values)
    chosen = name if name is not None and is_valid_name(name) else letta_repo_name(root)
    record_letta_identity(history, chosen, layout)


def _clear_unfinished(root: Path, stale: UnfinishedCheckout) -> None:
    """Empty a folder a stopped checkout left, refusing if anything in it is not its own.

    A file counts as the checkout's own if it holds what the commit has at its path, or the
    start of it (the process was killed while writing it). Anything else was put there
    since: it is never deleted.
    """
    expected: dict[str, tuple[int, bytes]] = {}
    with contextlib.suppress(Exception):  # a repository the kill left unreadable holds nothing
        history = History.open(root)
        try:
            tree = history.tree_of(stale.sha) if stale.sha else {}
            blobs = history.read_blobs({entry.sha for entry in tree.values()})
            expected = {path: (e.mode, blobs[e.sha]) for path, e in tree.items()}
        finally:
            history.close()
    for folder, dirs, files in os.walk(root):
        relative = os.path.relpath(folder, root)
        if relative == ".":
            dirs[:] = [name for name in dirs if name != ".git"]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = name if relative == "." else f"{relative}/{name}"
            if not _written_by_checkout(root / path, expected.get(path)):
                raise MemfsError(
                    f"{root} is an unfinished checkout, but {path} is not what it wrote; "
                    "move that file out of the folder and run the clone again"
                )
    _empty_folder(root)


def _written_by_checkout(full: Path, entry: tuple[int, bytes] | None) -> bool:
    """Whether the file at ``full`` is (the start of) what a checkout wrote there."""
    if entry is None:
        return False
    mode, data = entry
    try:
        if full.is_symlink():
            return mode == 0o120000 and os.fsencode(os.readlink(full)) == data
        if not full.is_file():
            return False  # a folder, a FIFO, a device: never what a checkout writes
        on_disk = full.read_bytes()
    except OSError:
        return False
    return mode != 0o120000 and data.startswith(on_disk)


def _empty_folder(root: Path) -> None:
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink()


def _name_from_url(url: str) -> str:
    """The folder a clone goes to by default: the URL's last part, never '.' or '..'; the
    agent id for a Letta memory repository (``letta://ID``, ``.../v1/git/ID/state.git``)."""
    from memfs.remotes import letta_agent_id

    with contextlib.suppress(MemfsError):
        agent_id = letta_agent_id(url)
        if agent_id is not None:
            return agent_id
    tail = url.rstrip("/").replace(":", "/").rsplit("/", 1)[-1].removesuffix(".git")
    return "agent" if tail in ("", ".", "..") else tail
