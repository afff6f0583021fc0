"""``memfs serve`` and the agent's secrets: its commits keep every secret's value out of
history, whenever and wherever the secret was set (docs/design-encryption.md §6.2).

Found from outside (review11 F05): a server that had opened an agent before a secret was set
elsewhere never learned it (the head did not move, so nothing was fetched, and the manifest it
read carried the secret unseen): a REST PATCH holding the value was committed and pushed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .machines import CLOUD, box, make_store, plaintext_hits
from .serve import running_server
from .test_gaps14 import _patch

VALUE = "patch-secret-value-7731"


@pytest.mark.timeout(180)
def test_a_running_server_learns_a_secret_set_later_and_refuses_its_value(
    tmp_path: Path,
) -> None:
    store = make_store("file", tmp_path)
    a = box(tmp_path, "a", store)
    a.ok("cloud", "add", CLOUD, store.cloud_url)
    a.ok("cloud", "default", CLOUD)
    a.ok("init", str(a.root), "--name", "keeper")
    a.at("push")
    with running_server(CLOUD, tmp_path / "s", env=a.env()) as server:
        status, body = _patch(server.url, "keeper", "system/human", "hello\n")
        assert status == 200, body  # the server has the agent open from here on
        a.at("pull")
        a.at("secret", "set", "API_KEY", input=VALUE)
        a.at("sync")
        status, body = _patch(server.url, "keeper", "system/human", f"my key is {VALUE}\n")
        assert status == 400, body
        assert "holds the value of secret API_KEY" in body and VALUE not in body
        assert "Traceback" not in server.output()
    assert plaintext_hits(store.objects("keeper"), [VALUE]) == {}
    a.at("pull")
    assert "hello" in (a.root / "system" / "human.md").read_text()
