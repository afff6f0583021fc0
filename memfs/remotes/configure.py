"""Changing which remotes an agent has: adding, removing, and marking one encrypted.

What ``memfs remote add/remove``, a clone and a cloud's first use write into ``.git/config``
(``remote.NAME.*`` sections, and Letta Code's ``letta.memoryRepository.url``). Reading the
configured remotes and sorting URLs is ``memfs.remotes``' (every sync and status does that);
this module stands apart because only the few commands that change the configuration need it.
"""

from __future__ import annotations

from memfs.errors import MemfsError, UnsupportedURLError
from memfs.gitconfig import save_config
from memfs.remotes import (
    BUCKET_PREFIX,
    ENCRYPT_KEY,
    LETTA_MIRROR_NAME,
    LETTA_MIRROR_SECTION,
    MIRROR_KEY,
    NAME,
    RemoteConfig,
    check_outside,
    get_remote,
    letta_agent_id,
    letta_mirror,
    list_remotes,
    normalize_url,
    redact,
    url_kind,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dulwich.config import Config

    from memfs.history import History


def add_remote(
    history: History, name: str, url: str, mirror: bool = False, encrypt: bool = False
) -> RemoteConfig:
    """Add a remote; the URL is checked for form, not reached. ``encrypt`` (object stores
    only): everything pushed there is sealed, and a plain agent found there is refused."""
    if NAME.fullmatch(name) is None:
        raise MemfsError(f"invalid remote name {name!r}: use letters, digits, '.', '_' and '-'")
    if name == LETTA_MIRROR_NAME:
        raise MemfsError(
            f"{name!r} is the name memfs shows for letta.memoryRepository.url: pick another name"
        )
    if any(remote.name == name for remote in list_remotes(history)):
        raise MemfsError(f"a remote named {name!r} exists already (remove it first)")
    if encrypt and url.lower().startswith(("file://", "local://")):
        url = BUCKET_PREFIX + url  # encrypted means an object store: a folder cloud here
    url = normalize_url(url)
    if encrypt and url_kind(url) != "bucket":
        raise UnsupportedURLError(
            redact(url), "--encrypt is for object stores (s3://, file:// clouds...), not git hosts"
        )
    check_outside(url, history.root)
    config = history.repo.get_config()
    _refuse_other_letta_agent(config, url)
    section = (b"remote", name.encode())
    config.set(section, b"url", url.encode())
    config.set(section, b"fetch", f"+refs/heads/*:refs/remotes/{name}/*".encode())
    if mirror:
        config.set(section, MIRROR_KEY, b"true")
    if encrypt:
        config.set(section, ENCRYPT_KEY, b"true")
    save_config(config)
    return RemoteConfig(name, url, mirror, encrypt=encrypt)


def record_encrypted(history: History, url: str) -> None:
    """Mark every remote at ``url`` encrypted (``remote.NAME.memfs-encrypt``): its agent was
    found encrypted, so a plain one there later is a downgrade, and no push to it ever
    uploads before it knows to seal."""
    config = history.repo.get_config()
    changed = False
    for section in config.sections():
        if len(section) == 2 and section[0] == b"remote":
            try:
                here = config.get(section, b"url").decode()
            except (KeyError, UnicodeDecodeError):
                continue
            if here == url and not config.get_boolean(section, ENCRYPT_KEY, False):
                config.set(section, ENCRYPT_KEY, b"true")
                changed = True
    if changed:
        save_config(config)


def _refuse_other_letta_agent(config: Config, url: str) -> None:
    """Refuse a Letta remote for another agent than the one Letta Code cloned here.

    Letta Code records the agent in ``letta.agentId``; pushing its memory into another
    agent's repository would mix two agents' memories.
    """
    wanted = letta_agent_id(url)
    if wanted is None:
        return
    try:
        here = config.get((b"letta",), b"agentId").decode().strip()
    except (KeyError, UnicodeDecodeError):
        return
    if here and here != wanted:
        raise MemfsError(
            f"this repository is Letta agent {here} (git config letta.agentId), not {wanted}: "
            "a remote for another agent would mix their memories"
        )


def remove_remote(history: History, name: str) -> None:
    """Remove a remote and its remote-tracking refs.

    ``letta.memoryRepository`` unsets Letta Code's ``letta.memoryRepository.url`` (as its
    ``/memory-repository unset`` does); nothing on the mirror is touched.
    """
    if name == LETTA_MIRROR_NAME and letta_mirror(history) is not None:
        with history.locked():
            config = history.repo.get_config()
            del config[LETTA_MIRROR_SECTION][b"url"]
            save_config(config)
        return
    get_remote(history, name)
    with history.locked():  # a git lock left by a killed fetch is then known to be stale
        config = history.repo.get_config()
        del config[(b"remote", name.encode())]
        save_config(config)
        prefix = f"refs/remotes/{name}/".encode()
        for ref in list(history.repo.refs.keys()):
            if ref.startswith(prefix):
                history.delete_ref(ref.decode())
