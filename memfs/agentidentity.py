"""What keeps an agent the same agent across a commit: its agent.yaml and the id in it.

Every memfs pull refuses a commit that turns the agent into another (memfs/incoming.py): a
memfs-native agent's commit without agent.yaml, a Letta Code repo's commit with one, another
agent id. So no commit memfs makes may do it, nor any push ``memfs serve`` takes: the commit
gate (memfs/agentrules.py: the CLI, the watcher, mount, the REST API) holds such a change in
the work tree (an agent.yaml deleted or given another id), restore and revert refuse it,
and ``memfs serve`` refuses such a push (memfs/server/gitpush.py), all in
``change_reason``'s words.
"""

from __future__ import annotations

from collections.abc import Callable

from memfs.layout import MANIFEST_FILE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memfs.lettahook import Refusal
    from memfs.trees import Files

RESTORE_HINT = f"'git checkout -- {MANIFEST_FILE}' brings it back"
REFUSED = "every other copy of the agent would refuse this commit"  # in every reason


def change_reason(before: bytes | None, after: bytes | None) -> str | None:
    """Why going from agent.yaml ``before`` to ``after`` (None: no agent.yaml) makes the
    agent another one that other memfs copies would refuse; None if it does not."""
    if before is not None and after is None:
        return f"{MANIFEST_FILE} is deleted: a memfs agent keeps it, and {REFUSED}"
    if before is None and after is not None:
        return f"{MANIFEST_FILE} is added to a Letta Code memory repo, which has none: {REFUSED}"
    if before is None or after is None or before == after:
        return None
    from memfs.schema import manifest_data

    old_id = manifest_data(before).get("id")
    new_id = manifest_data(after).get("id")
    if old_id and new_id and str(old_id) != str(new_id):
        return (
            f"{MANIFEST_FILE} changes the agent id ({old_id} -> {new_id}): {REFUSED} as "
            "another agent's"
        )
    return None


def refusal(
    head_tree: Files,
    payload: dict[str, tuple[int, bytes] | None],
    blob: Callable[[str], bytes],
) -> Refusal | None:
    """The refusal holding agent.yaml's change in ``payload`` (a proposed commit on
    ``head_tree``, which holds at least agent.yaml when HEAD does), or None. Adding an
    agent.yaml is not held here: ``memfs init`` does it to adopt a folder's own history."""
    entry = head_tree.get(MANIFEST_FILE)
    if entry is None or MANIFEST_FILE not in payload:
        return None
    change = payload[MANIFEST_FILE]
    reason = change_reason(blob(entry.sha), None if change is None else change[1])
    if reason is None:
        return None
    from memfs.lettahook import Refusal

    return Refusal(MANIFEST_FILE, f"{reason}; {RESTORE_HINT}")
