"""The status record carried over a commit (memfs/statuscarry.py): the first status after a
commit is answered from the record of the HEAD before and the commit record, the same answer
as a walk, and a walk whenever the two cannot vouch for the tree.

Each test compares with the answer worked out from scratch (both records out of the way).
"""

from __future__ import annotations

import os
from pathlib import Path

import memfs
from memfs import statuscarry

from .conftest import write
from .test_statusrecord import RECORD, fresh, make_agent, served, settle


def carried(agent: memfs.Agent) -> tuple[dict[str, object], bool]:
    """The status as a command gets it, and whether it was carried over a commit."""
    before = statuscarry.records_carried
    answer, used = served(agent)
    assert not used  # the record of the HEAD before never answers for this one itself
    return answer, statuscarry.records_carried > before


def committed_after_status(tmp_path: Path, text: str = "---\ndescription: edited\n---\nnew\n"
                           ) -> memfs.Agent:  # fmt: skip
    """An agent whose status is on record, then one file edited and committed."""
    agent = make_agent(tmp_path)
    agent.commit()  # the commit record, made from a settled tree
    settle(agent.root)
    served(agent)
    assert served(agent)[1]
    write(agent.root, "reference/t1/n004.md", text)
    settle(agent.root)
    assert agent.commit() is not None
    settle(agent.root)
    return agent


def test_a_status_after_a_commit_is_carried_and_recorded(tmp_path: Path) -> None:
    agent = committed_after_status(tmp_path)
    answer, used = carried(agent)
    assert used and answer["clean"] and answer["head"] == agent.history.head()
    again, used = served(agent)  # the record was written for the new HEAD
    assert used and again == answer
    assert answer == fresh(agent)
    problems = [p["path"] for p in answer["problems"]]  # type: ignore[attr-defined]
    assert problems == ["reference/broken.md"]


def test_ls_and_context_read_the_carried_record_alike(tmp_path: Path) -> None:
    from .test_statusrecord import _reads

    agent = committed_after_status(tmp_path)
    assert carried(agent)[1]
    *from_record, used = _reads(agent)
    assert used
    (agent.root / RECORD).unlink()
    *walked, used = _reads(agent)
    assert not used and from_record == walked


def test_a_committed_file_with_a_problem_is_walked(tmp_path: Path) -> None:
    agent = committed_after_status(tmp_path, "---\ndescription: [unclosed\n---\nbody\n")
    answer, used = carried(agent)
    assert not used
    problems = [p["path"] for p in answer["problems"]]  # type: ignore[attr-defined]
    assert "reference/t1/n004.md" in problems
    assert answer == fresh(agent)


def test_a_file_fixed_and_committed_is_walked(tmp_path: Path) -> None:
    """The record before lists a problem of the file committed: it may be gone now."""
    agent = make_agent(tmp_path)
    agent.commit()
    settle(agent.root)
    served(agent)
    write(agent.root, "reference/broken.md", "---\ndescription: fixed\n---\nbody\n")
    settle(agent.root)
    agent.commit()
    settle(agent.root)
    answer, used = carried(agent)
    assert not used and answer["problems"] == [] and answer == fresh(agent)


def test_committed_conflict_markers_are_walked(tmp_path: Path) -> None:
    agent = committed_after_status(
        tmp_path, "---\ndescription: x\n---\n<<<<<<< ours\na\n=======\nb\n>>>>>>> theirs\n"
    )
    answer, used = carried(agent)
    assert not used and answer["conflicts"] and answer == fresh(agent)


def test_changes_after_the_commit_are_walked(tmp_path: Path) -> None:
    for change in ("edit", "same-size-same-mtime", "new-file", "delete", "chmod", "other-file"):
        agent = committed_after_status(tmp_path / change)
        note = agent.root / "reference/t1/n004.md"
        if change == "edit":
            note.write_text("---\ndescription: again\n---\nnewer\n")
        elif change == "same-size-same-mtime":
            st = note.stat()
            note.write_text(note.read_text().replace("new", "old"))
            os.utime(note, ns=(st.st_atime_ns, st.st_mtime_ns))
            assert note.stat().st_size == st.st_size
        elif change == "new-file":
            write(agent.root, "reference/t1/new.md", "---\ndescription: n\n---\nx\n")
        elif change == "delete":
            note.unlink()
        elif change == "chmod":
            note.chmod(0o755)
        else:
            write(agent.root, "reference/t2/n005.md", "---\ndescription: other\n---\ny\n")
        settle(agent.root)
        answer, used = carried(agent)
        assert not used, change
        assert answer["changes"], change
        assert answer == fresh(agent), change


def test_an_edit_committed_and_asked_about_at_once_gets_the_same_answer(tmp_path: Path) -> None:
    """Within the racy window the answer is walked; a moment later (a slow machine) it may
    be carried: the same answer either way."""
    agent = make_agent(tmp_path)
    agent.commit()
    settle(agent.root)
    served(agent)
    write(agent.root, "reference/t1/n004.md", "---\ndescription: racing\n---\nnow\n")
    agent.commit()
    answer, _ = carried(agent)
    assert answer["clean"] and answer == fresh(agent)


def test_without_a_commit_record_or_with_a_garbled_one_it_walks(tmp_path: Path) -> None:
    agent = committed_after_status(tmp_path)
    expected = fresh(agent)
    served(agent)  # the record for the new HEAD...
    record = agent.root / RECORD
    data = record.read_bytes()
    (agent.root / ".git/memfs/commit.bin").unlink()
    import marshal

    old = marshal.loads(data)
    planted = (("other",), *old[1:])  # ...made for another key: not carried
    record.write_bytes(marshal.dumps(planted))
    assert carried(agent) == (expected, False)
    record.write_bytes(b"\x80garbage")
    assert carried(agent) == (expected, False)


def test_a_status_record_of_another_head_with_a_skipped_file_is_walked(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    manifest = agent.root / "agent.yaml"
    manifest.write_text(manifest.read_text() + "max_file_size: 2000\n")
    write(agent.root, "reference/big.md", "x" * 5000)
    agent.commit()
    settle(agent.root)
    served(agent)
    write(agent.root, "reference/t1/n004.md", "---\ndescription: edited\n---\nnew\n")
    settle(agent.root)
    agent.commit()
    settle(agent.root)
    answer, used = carried(agent)
    assert not used and answer == fresh(agent)


def test_ls_and_context_right_after_a_commit_carry_the_record(tmp_path: Path) -> None:
    from .test_statusrecord import _reads

    agent = committed_after_status(tmp_path)
    before = statuscarry.records_carried
    *carried_reads, used = _reads(agent)
    assert used and statuscarry.records_carried == before + 1
    (agent.root / RECORD).unlink()
    *walked, used = _reads(agent)
    assert not used and carried_reads == walked


def test_a_status_record_listing_an_added_file_is_walked(tmp_path: Path) -> None:
    """The record before listed a file added: HEAD then tracked other paths (a walk may go
    into other folders), so the status after committing it is walked."""
    agent = make_agent(tmp_path)
    agent.commit()
    write(agent.root, "reference/t1/added.md", "---\ndescription: added\n---\nx\n")
    settle(agent.root)
    answer, _ = served(agent)
    assert answer["changes"] == [{"path": "reference/t1/added.md", "status": "added"}]
    agent.commit()
    settle(agent.root)
    answer, used = carried(agent)
    assert not used and answer["clean"] and answer == fresh(agent)


def test_a_letta_repo_whose_layout_head_decides_is_walked(letta_v1_repo: Path) -> None:
    with memfs.open(letta_v1_repo) as agent:
        agent.commit()
        settle(agent.root)
        served(agent)
        memory = next(p for p in agent.root.rglob("*.md") if ".git" not in p.parts)
        memory.write_text(memory.read_text() + "\nmore\n")
        settle(agent.root)
        agent.commit()
        settle(agent.root)
        answer, used = carried(agent)
        assert not used and answer == fresh(agent)
