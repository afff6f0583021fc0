"""A ``Status`` as plain data and back: what the status record keeps of the answer.

The status record (``memfs.statusrecord``) is ``marshal``'d, so nothing in it runs; the
answer is kept as rows of str, int and None (``status_data``) and rebuilt only if every row
is of the shape and types written (``status_of``: ValueError for anything else, and the
record is ignored). The codec stands apart from the record's validity rules: a status carried
forward after a commit (``memfs.statuscarry``) reads and writes the same rows, and a command
that only checks whether a record is still valid (a one-file commit or push) never needs it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.agent import Status


def status_data(status: Status) -> tuple[Any, ...]:
    """``status`` as plain data; what ``live`` fills in (branch, journal, git operation,
    detached) is not kept."""
    return (
        status.head,
        [(c.path, c.status, _entry(c.old), _entry(c.new)) for c in status.changes],
        [(p.path, p.line, p.message, p.severity) for p in status.problems],
        list(status.secrets),
        [(s.path, s.reason) for s in status.skipped],
        [(c.path, c.kind, c.copy_path) for c in status.conflicts],
        [(p.path, p.line, p.message, p.severity) for p in status.held],
        status.blocked,
    )


def _entry(entry: Any) -> tuple[int, str] | None:
    return None if entry is None else (entry.mode, entry.sha)


_STR, _INT, _OPT_STR = (str,), (int,), (str, type(None))
_ANY = (int, str, bytes, tuple, list, dict, bool, float, type(None))  # checked apart
_PROBLEM = (_STR, _INT, _STR, _STR)
_SEVERITIES = ("error", "warning")
_CHANGES = ("added", "modified", "deleted")


def _rows(value: Any, kinds: tuple[tuple[type, ...], ...]) -> list[tuple[Any, ...]]:
    """``value`` if it is a list of tuples whose fields are of ``kinds``; else ValueError."""
    if type(value) is not list:
        raise ValueError("not a list")
    width = len(kinds)
    for row in value:
        if type(row) is not tuple or len(row) != width:
            raise ValueError("not a row")
        for field, kind in zip(row, kinds, strict=True):
            if type(field) not in kind:
                raise ValueError("a field of another type")
    return value


def _tree_entry(value: Any) -> Any:
    from memfs.trees import TreeEntry

    if value is None:
        return None
    if type(value) is not tuple or len(value) != 2:
        raise ValueError("not an entry")
    mode, sha = value
    if type(mode) is not int or type(sha) is not str or len(sha) != 40:
        raise ValueError("not an entry")
    return TreeEntry(mode, sha)


def status_of(data: Any) -> Status:
    """The Status ``status_data`` made ``data`` of; ValueError for anything else."""
    from memfs.agentstatus import Status
    from memfs.schema import Problem
    from memfs.trees import FileChange

    if type(data) is not tuple or len(data) != 8:
        raise ValueError("not a status")
    head, changes, problems, secrets, skipped, conflicts, held, blocked = data
    if type(head) not in _OPT_STR or type(blocked) is not bool:
        raise ValueError("not a status")
    found = [
        FileChange(path, kind, _tree_entry(old), _tree_entry(new))
        for path, kind, old, new in _rows(changes, (_STR, _STR, _ANY, _ANY))
    ]
    if any(change.status not in _CHANGES for change in found):
        raise ValueError("not a change")
    problem_rows = _rows(problems, _PROBLEM) + _rows(held, _PROBLEM)
    if any(row[3] not in _SEVERITIES for row in problem_rows):
        raise ValueError("not a severity")
    if type(secrets) is not list or any(type(name) is not str for name in secrets):
        raise ValueError("not a list of secrets")
    skipped_files = []
    if _rows(skipped, (_STR, _STR)):  # the work tree's module only when a file was skipped
        from memfs.worktree import Skipped

        skipped_files = [Skipped(*row) for row in skipped]
    open_conflicts = []
    if _rows(conflicts, (_STR, _STR, _OPT_STR)):
        from memfs.conflicts import OpenConflict

        open_conflicts = [OpenConflict(*row) for row in conflicts]
    return Status(
        branch="",  # filled in live
        head=head,
        changes=found,
        problems=[Problem(*row) for row in problems],
        secrets=secrets,
        skipped=skipped_files,
        conflicts=open_conflicts,
        held=[Problem(*row) for row in held],
        blocked=blocked,
    )
