"""The public API is pinned: adding or removing a name is a deliberate change."""

from __future__ import annotations

import memfs


def test_exported_names() -> None:
    assert memfs.__all__ == [
        "Agent",
        "CommitInfo",
        "FileChange",
        "MemfsError",
        "MemoryFile",
        "Problem",
        "Status",
        "__version__",
        "clone",
        "errors",
        "init",
        "mounted",
        "open",
        "watch",
    ]
    for name in memfs.__all__:
        assert getattr(memfs, name) is not None, name


def test_errors_share_one_base() -> None:
    from memfs import errors

    subclasses = [
        value
        for value in vars(errors).values()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value is not errors.MemfsError
    ]
    assert subclasses and all(issubclass(cls, memfs.MemfsError) for cls in subclasses)
    assert all(isinstance(cls.exit_code, int) for cls in subclasses)
