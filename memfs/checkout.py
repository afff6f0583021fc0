"""The marker of a clone or checkout in progress: ``.git/memfs/checkout.json``.

A fresh checkout writes the marker (remote URL and commit) after the fetch and before its
first file, and removes it once the branch and index point at the commit. A folder that still
holds it was left by a checkout that stopped midway (kill -9, power cut): its files are a
partial copy of a commit that is not checked out, so no command may commit them (they would
become an unrelated root commit) and only ``memfs clone``/``checkout`` may touch it, to replace
it. This module is only the marker; the checkout itself is ``memfs.cloning.clone``.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from memfs.record import FrozenRecord
from memfs.util import atomic_write

MARKER = Path(".git") / "memfs" / "checkout.json"


class UnfinishedCheckout(FrozenRecord):
    """What a stopped checkout was bringing in: from where, and which commit."""

    __slots__ = _fields = ("url", "sha")
    url: str
    sha: str

    def __init__(self, url: str, sha: str) -> None:
        self._set(url, sha)


def mark_started(root: Path, url: str, sha: str) -> None:
    """Record, durably, that a checkout of ``sha`` from ``url`` is writing into ``root``.

    ``url`` is for messages only: give it with credentials removed.
    """
    path = root / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"url": url, "sha": sha}).encode())


def mark_finished(root: Path) -> None:
    """The checkout is whole: branch and index point at its commit."""
    with contextlib.suppress(FileNotFoundError):
        (root / MARKER).unlink()


def unfinished(root: Path) -> UnfinishedCheckout | None:
    """The checkout that stopped midway in ``root``, or None if there is none.

    A marker that cannot be read still means "unfinished": it was written before any file.
    """
    path = root / MARKER
    if not os.path.lexists(path):
        return None
    try:
        data = json.loads(path.read_bytes())
        return UnfinishedCheckout(str(data["url"]), str(data["sha"]))
    except (OSError, ValueError, KeyError, TypeError):
        return UnfinishedCheckout("<its remote>", "")


def only_a_fresh_repo(root: Path) -> bool:
    """Whether ``root`` holds nothing but a ``.git`` as a clone killed before its marker left
    it: dulwich's ``Repo.init`` layout (its description, no hook samples as git writes), no
    ref, no object, no index. Nothing in it is anyone's: a clone may take the folder over."""
    try:
        if [entry.name for entry in os.scandir(root)] != [".git"]:
            return False
        git = root / ".git"
        description = git / "description"
        if description.exists() and description.read_bytes() != b"Unnamed repository":
            return False
        if any((git / name).exists() for name in ("index", "packed-refs", "memfs")):
            return False
        for folder in ("refs", "objects", "hooks"):
            for _, _, files in os.walk(git / folder):
                if files:
                    return False
    except OSError:
        return False
    return True
