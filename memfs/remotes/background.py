"""Steps a push or pull runs on a thread beside its other work: the manifest's read started
before the local work (``Reading``), the pack's upload while the manifest is read
(``Uploading``) with its index beside it (``Putting``), and the local copy of the pack a push
sends (``Keeping``)."""

from __future__ import annotations

import contextlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs.history import History
    from memfs.history.packing import PackFiles
    from memfs.remotes.bucket import BucketRemote
    from memfs.remotes.storage import Storage

PacksFor = tuple["History", str, "str | None"]
"""A pull's prefetch: the repository, the branch, and where it last saw the branch there."""


class Background:
    """A step run on a thread; ``wait`` joins it and raises what it raised."""

    def __init__(self, name: str) -> None:
        import threading

        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._guarded, name=name, daemon=True)
        self._thread.start()

    def _guarded(self) -> None:
        try:
            self.run()
        except BaseException as error:  # handed to the waiting thread by ``wait``
            self._error = error

    def run(self) -> None:
        raise NotImplementedError

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

    def finished(self) -> bool:
        """Join the thread; whether the step succeeded (what it raised is kept for ``wait``)."""
        self._thread.join()
        return self._error is None


class Reading(Background):
    """The manifest read on a thread (``BucketRemote.prefetch``): the answer is the remote's
    ``_last_read`` once ``wait`` returns; for a pull, the packs it lacks downloaded after."""

    def __init__(self, remote: BucketRemote, packs_for: PacksFor | None = None) -> None:
        self.remote, self.packs_for = remote, packs_for
        super().__init__("memfs-read-manifest")

    def run(self) -> None:
        self.remote.read_manifest_now()
        if self.packs_for is not None:
            self.remote.download_ahead(*self.packs_for)


class Uploading(Background):
    """A pack and its index uploading while the pushing thread reads the manifest."""

    def __init__(self, remote: BucketRemote, pack: PackFiles) -> None:
        self.remote, self.pack = remote, pack
        super().__init__("memfs-upload-pack")

    def run(self) -> None:
        self.remote._put_pack(self.pack)


class Putting(Background):
    """One object written on a thread (a pack's index while the pack itself goes)."""

    def __init__(self, storage: Storage, key: str, data: bytes, point: str) -> None:
        self.storage, self.key, self.data, self.point = storage, key, data, point
        super().__init__("memfs-put")

    def run(self) -> None:
        from memfs.faults import crash_point

        crash_point(self.point)
        self.storage.put_if_absent(self.key, self.data)


class Keeping(Background):
    """The local import of a pack this push uploads, on a thread while the requests go: its
    objects are here already (loose), so the copy only spares a later fetch downloading it.

    It writes and fsyncs the pack and its index (~2-10 ms on a busy disk), overlapping the
    pack, index and manifest requests. The pushing thread reads no objects until ``wait``;
    a copy that cannot be written (a full disk) is left out: the push stands, and a fetch
    that needs the pack downloads it.
    """

    def __init__(self, history: History, pack: PackFiles) -> None:
        self.history, self.pack = history, pack
        super().__init__("memfs-keep-pack")

    def run(self) -> None:
        with contextlib.suppress(OSError):  # only a download spared is lost
            self.history.import_pack(self.pack.name, self.pack.pack, self.pack.index)
