"""What follows a key rotation (docs/design-encryption.md §4, ``key rm`` and ``key rotate``):
everything in the store that the old epoch key opens is sealed again under the new one, so the
machine a ``key rm`` removed (which keeps its old keys) cannot read what is written from now on.

(2) the manifest, and the secrets blob inside it, via ``BucketRemote.update_manifest`` (a
compare-and-swap loop: a push racing the rotation is re-applied, never lost); (3) this
checkout's presence record; (4) unless ``--no-reseal``, the packs, by a compaction that builds
one pack under the new epoch and retires the old ones (deleted after the grace period). What the
removed machine had already read stays readable to it: that cannot be taken back.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING

from memfs.errors import LockTimeoutError, MemfsError, PushRejectedError, TamperError

if TYPE_CHECKING:
    from memfs.agent import Agent
    from memfs.crypto.keyring import RingKeys
    from memfs.keys import KeyStore, Rotation
    from memfs.remotes.manifest import BucketManifest

SECRETS_NAME = "manifest.json#secrets"  # the logical name of the sealed secrets (design §3)
SECRETS_FIELD = "secrets"


def mark_rotation(agent: Agent, store: KeyStore, epoch: int) -> bool:
    """(0) Before keys.json moves to ``epoch``: the sealed manifest names it (``rotating``,
    ``memfs.remotes.sealedremote.ROTATING``), so a member that reads the manifest while
    keys.json is ahead of it (the rotation's window, or for good after a ``key rm`` killed
    between its steps) reads keys.json and seals under the new epoch, not the one its key
    cache holds, which the removed machine holds too; and that machine finds out it is
    removed before it uploads anything. The first manifest sealed under ``epoch`` drops the
    mark. Whether the manifest was marked (an encrypted remote with a manifest)."""
    from memfs.incoming import open_for
    from memfs.remotes import get_remote
    from memfs.remotes.sealedremote import ROTATING

    remote = open_for(agent, get_remote(agent.history, store.remote))
    update = getattr(remote, "update_manifest", None)
    if update is None or not getattr(remote, "encrypted", False):
        return False
    if remote.read_manifest()[0] is None:  # type: ignore[attr-defined]
        return False
    update(lambda manifest: manifest._replace(extra={**manifest.extra, ROTATING: epoch}))
    return True


def reseal(
    agent: Agent, store: KeyStore, keys: RingKeys, rotation: Rotation, packs: bool
) -> Rotation:
    """After a rotation: (2) the manifest and its secrets re-sealed under the new epoch, (3)
    this checkout's presence written again, (4) unless ``packs`` is False, the packs re-sealed
    by a compaction. Steps that cannot be done now are listed in ``rotation.pending``."""
    from memfs.config import seconds_from_env
    from memfs.incoming import open_for
    from memfs.remotes import get_remote
    from memfs.remotes.bucketgc import COMPACT_GRACE_ENV, DEFAULT_GRACE_S

    config = get_remote(agent.history, store.remote)
    remote = open_for(agent, config)
    update = getattr(remote, "update_manifest", None)
    if update is not None and remote.read_manifest()[0] is not None:  # type: ignore[attr-defined]
        seen = Seen.of(agent, store.remote, rotation.epoch - 1)
        update(lambda manifest: reseal_secrets(manifest, keys, rotation.epoch, seen))
        rotation.manifest = True
    if not getattr(remote, "encrypted", False):  # a plain cloud: only its secrets are sealed
        return rotation
    rotation.presence = _write_presence(agent, remote)
    gc = f"memfs gc --remote {store.remote}"
    if not packs:
        rotation.pending.append(f"packs: still sealed under the old epoch until '{gc}'")
        return rotation
    grace_s = seconds_from_env(COMPACT_GRACE_ENV, DEFAULT_GRACE_S)
    try:
        with agent.history.locked():
            rotation.packs = remote.compact(agent.history, grace_s, reseal=True)  # type: ignore[attr-defined]
    except (PushRejectedError, LockTimeoutError):  # pushers won the swap, or a watcher is busy
        rotation.pending.append(f"re-seal pending: run '{gc}'")
    return rotation


@dataclasses.dataclass(frozen=True)
class Seen:
    """What this machine knows of the store's secrets blob before a rotation: the digest of
    the last blob it read or wrote there (None: it never did, or forgot it with ``memfs key
    trust-rollback``), and the keyring's epoch before the rotation."""

    remote: str
    digest: str | None
    before: int

    @classmethod
    def of(cls, agent: Agent, remote: str, before: int) -> Seen:
        from memfs.secrets.hooks import read_meta

        meta = read_meta(agent.history.state_dir)
        digest = meta.get("digest") if meta.get("remote") == remote else None
        return cls(remote, digest if isinstance(digest, str) else None, before)

    def check(self, url: str, blob: bytes, sealed_under: int) -> None:
        """Refuse to seal again a blob this machine has not seen that is sealed under an
        epoch before the keyring's: every member reads it as planted (a removed machine
        keeps its old keys), and a re-seal under the new epoch would launder it."""
        if sealed_under >= self.before or self.digest in (None, _digest(blob)):
            return
        raise TamperError(
            url,
            SECRETS_NAME,
            f"changed in the store since this machine last read it and is sealed under "
            f"epoch {sealed_under}, before the keyring's epoch {self.before} (written with "
            "the key of a removed machine?): it was not sealed again. If the change is "
            f"yours: 'memfs key trust-rollback {self.remote}', then 'memfs key rotate'",
        )


def check_before_rotation(agent: Agent, store: KeyStore, keys: RingKeys) -> None:
    """``Seen.check`` before a rotation moves keys.json: a planted secrets blob stops the
    rotation before anything changed (the re-seal checks again, in its compare-and-swap)."""
    from memfs.crypto.envelope import peek
    from memfs.incoming import open_for
    from memfs.remotes import get_remote

    seen = Seen.of(agent, store.remote, keys.current()[0])
    if seen.digest is None:
        return
    remote = open_for(agent, get_remote(agent.history, store.remote))
    manifest, _ = remote.read_manifest()  # type: ignore[attr-defined]
    text = manifest.extra.get(SECRETS_FIELD) if manifest is not None else None
    if not isinstance(text, str):
        return
    try:
        blob = base64.b64decode(text, validate=True)
        _, sealed_under = peek(blob)
    except (TamperError, ValueError):
        raise TamperError(keys.url, SECRETS_NAME, "is malformed") from None
    seen.check(keys.url, blob, sealed_under)


def _digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def reseal_secrets(
    manifest: BucketManifest, keys: RingKeys, epoch: int, seen: Seen | None = None
) -> BucketManifest:
    """``manifest`` with its sealed secrets (``extra["secrets"]``, base64 of an envelope)
    sealed again under ``epoch``, as one more generation (``prev`` = the blob it replaces, as
    memfs.secrets writes it), so a reader's rollback and chain checks see an ordinary change.
    A machine removed by the rotation keeps the values it has seen, and reads no new one.
    With ``seen``, a blob this machine has not seen under an epoch older than the keyring's
    is refused (TamperError), never laundered."""
    from memfs.crypto.envelope import Role, open_sealed, peek, seal

    text = manifest.extra.get(SECRETS_FIELD)
    if not isinstance(text, str):
        return manifest
    try:
        blob = base64.b64decode(text, validate=True)
        _, sealed_under = peek(blob)
        if sealed_under >= epoch:
            return manifest
    except TamperError:
        raise TamperError(keys.url, SECRETS_NAME) from None
    except ValueError:
        raise TamperError(keys.url, SECRETS_NAME, "is malformed") from None
    if seen is not None:
        seen.check(keys.url, blob, sealed_under)
    try:
        doc = json.loads(
            open_sealed(keys.key(sealed_under), keys.repo_id, SECRETS_NAME, Role.SECRETS, blob)
        )
    except TamperError:
        raise TamperError(keys.url, SECRETS_NAME) from None
    except ValueError:
        raise TamperError(keys.url, SECRETS_NAME, "is malformed") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("generation"), int):
        raise TamperError(keys.url, SECRETS_NAME, "is malformed")
    doc = {**doc, "generation": doc["generation"] + 1, "prev": hashlib.sha256(blob).hexdigest()}
    plain = json.dumps(doc, sort_keys=True).encode()
    sealed = seal(keys.key(epoch), epoch, Role.SECRETS, keys.repo_id, SECRETS_NAME, plain)
    extra = {**manifest.extra, SECRETS_FIELD: base64.b64encode(sealed).decode()}
    return manifest._replace(extra=extra)


def _write_presence(agent: Agent, remote: object) -> bool:
    """This checkout's presence record (one writer: its own) put back as it is, now sealed
    under the new epoch; False when it has none in this store. Other environments' records
    are theirs to write: each is sealed anew by its next heartbeat."""
    from memfs.presence import ENV_ID_FILE, env_id, object_key

    storage = getattr(remote, "storage", None)
    if storage is None or not (agent.history.state_dir / ENV_ID_FILE).is_file():
        return False
    key = object_key(env_id(agent))
    try:
        got = storage.get(key)
        if got is None:
            return False
        storage.put(key, got[0])
    except MemfsError:  # presence never fails what it reports on: the next beat re-seals it
        return False
    return True
