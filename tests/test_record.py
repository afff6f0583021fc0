"""The public result types are value classes (memfs/record.py), not dataclasses: the contract
a library user can rely on, as the README states it."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

import memfs

from .conftest import write


def test_results_compare_copy_pickle_and_show_their_fields(tmp_path: Path) -> None:
    agent = memfs.init(tmp_path / "agent", name="agent")
    write(agent.root, "system/human.md", "---\ndescription: [broken\n---\nx\n")
    status = agent.status()
    change, problem = status.changes[0], status.problems[0]
    write(agent.root, "system/human.md", "---\ndescription: who\n---\nx\n")
    info = agent.commit("m")
    assert info is not None
    for value in (status, change, problem, info):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value
        assert repr(value).startswith(type(value).__name__ + "(")
        assert set(value._asdict()) == set(type(value)._fields)
    assert change._asdict()["path"] == "system/human.md"
    for frozen in (change, problem):
        assert hash(frozen) == hash(copy.copy(frozen))
    for frozen in (change, problem, info):
        with pytest.raises(AttributeError):
            frozen.path = "elsewhere"  # type: ignore[misc]
    assert info._replace(message="n").message == "n" and info.message == "m"
    assert status.to_dict()["changes"][0]["path"] == "system/human.md"
