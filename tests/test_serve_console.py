"""The web console of ``memfs serve``, driven in a real headless Chromium (Debian's ``chromium``
and ``chromium-driver`` through Selenium) against a whole ``memfs serve`` process over moto's S3,
plus what a browser cannot show (status codes, headers, hostile requests) with httpx.

Every change the console makes is checked where it matters: in a fresh checkout of the bucket.
Screenshots go to the test's tmp_path and to tests/artifacts/ (gitignored) for the note.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import memfs
from memfs import sync
from memfs.cloud import agent_url
from memfs.remotes.configure import add_remote
from tests.conftest import S3Bucket, assert_git_agrees
from tests.serve import ServerHandle, running_server

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
HUMAN = "Name: Ada.\nGrows tomatoes.\nPrefers short answers.\n"


# -- the agent, the server, the browser -------------------------------------------------------


def make_agent(root: Path, cloud: str, name: str = "garden", **files: str) -> memfs.Agent:
    """An agent with a few memory files, pushed to ``cloud``: machine A of the story."""
    agent = memfs.init(root, name=name, description="helps with the vegetable garden")
    human = agent.memory["system/human"]
    human.value = HUMAN
    human.save()
    for path, text in {
        "reference/harvest.md": "---\ndescription: What was harvested when\n---\nJuly: 3 kg.\n",
        **files,
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    add_remote(agent.history, "origin", agent_url(cloud, name))
    report = sync.sync(agent)
    assert report.remotes[0].error is None, report.remotes[0].error
    return agent


def edit_and_push(agent: memfs.Agent, path: str, text: str) -> None:
    """Another machine edits ``path`` and pushes."""
    (agent.root / path).write_text(text)
    report = sync.sync(agent)
    assert report.remotes[0].error is None, report.remotes[0].error


def fresh_file(cloud: str, tmp_path: Path, path: str, name: str = "garden") -> str:
    """``path`` as a fresh checkout of the bucket has it (git fsck clean)."""
    folder = tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}"
    with memfs.clone(agent_url(cloud, name), folder) as clone:
        assert_git_agrees(clone.root)
    return (folder / path).read_text()


@pytest.fixture
def cloud(s3: S3Bucket) -> str:
    return s3.url("agents")


@pytest.fixture
def machine_a(cloud: str, tmp_path: Path) -> Iterator[memfs.Agent]:
    with make_agent(tmp_path / "machine-a" / "garden", cloud) as agent:
        yield agent


@pytest.fixture
def server(cloud: str, machine_a: memfs.Agent, tmp_path: Path) -> Iterator[ServerHandle]:
    with running_server(cloud, tmp_path) as handle:
        yield handle
    assert "Traceback" not in handle.output()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """One headless Chromium for the module (Debian's: nothing is downloaded)."""
    if not (CHROMIUM and CHROMEDRIVER):
        reason = "Debian's chromium and chromium-driver are not installed (see .ci/run)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the console in a browser: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP reports, JS errors
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    browser.set_page_load_timeout(60)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def browser(driver: Any) -> Iterator[Any]:
    """The module's browser, desktop-sized, with no cookie left from another test."""
    driver.set_window_size(1200, 900)
    driver.get_log("browser")  # drained: what earlier tests' pages logged is theirs
    yield driver
    driver.delete_all_cookies()


def wait_until(
    browser: Any, condition: Callable[[Any], Any], what: str, timeout: float = 30
) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(condition, what)


def by_css(browser: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, selector)


def all_css(browser: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def click_and_wait(browser: Any, element: Any) -> None:
    """Click something that loads a new page and wait for that page."""
    old = by_css(browser, "html")
    element.click()
    wait_until(browser, lambda b: _stale(old), "the next page")
    wait_until(
        browser, lambda b: b.execute_script("return document.readyState") == "complete", "load"
    )


def _stale(element: Any) -> bool:
    """Whether ``element``'s page is gone (Chromium says so as "stale" or as "does not
    belong to the document", depending on when it is asked)."""
    from selenium.common.exceptions import WebDriverException

    try:
        element.tag_name  # noqa: B018
    except WebDriverException:
        return True
    return False


def screenshot(browser: Any, tmp_path: Path, name: str) -> Path:
    """The page as a PNG in tmp_path, and a copy in tests/artifacts/ for the note."""
    shot = tmp_path / f"{name}.png"
    assert browser.save_screenshot(str(shot))
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / shot.name)
    return shot


def set_textarea(browser: Any, text: str) -> None:
    area = by_css(browser, "textarea#value")
    area.clear()
    area.send_keys(text)
    assert area.get_attribute("value") == text


# -- in the browser ---------------------------------------------------------------------------


def test_list_open_edit_save_and_see_it_in_a_fresh_checkout(
    server: ServerHandle, browser: Any, cloud: str, tmp_path: Path
) -> None:
    browser.get(server.url + "/")
    row = by_css(browser, "table.agents tbody tr")
    assert "garden" in row.text and "helps with the vegetable garden" in row.text
    assert "test-host" in row.text  # the host of the last push
    screenshot(browser, tmp_path, "console-agents")

    click_and_wait(browser, by_css(browser, "td.name a"))
    assert by_css(browser, "h1").text == "garden"
    pinned = [e.text for e in all_css(browser, "article.block h3")]
    assert "system/human" in pinned and "system/persona" in pinned
    human = by_css(browser, "article.block[id='system/human.md']")
    assert "Grows tomatoes." in human.text
    assert "/ 5,000 characters" in human.text  # size against its limit
    assert "reference/" in by_css(browser, "ul.tree").text
    assert "What was harvested when" in by_css(browser, "ul.tree").text
    screenshot(browser, tmp_path, "console-agent")

    click_and_wait(browser, by_css(browser, "article.block[id='system/human.md'] h3 a"))
    assert by_css(browser, "textarea#value").get_attribute("value") == HUMAN
    set_textarea(browser, "Name: Ada Lovelace.\nGrows tomatoes and beans.\n")
    click_and_wait(browser, by_css(browser, "button#save"))
    assert "Saved." in by_css(browser, ".banner.ok").text
    assert "beans" in by_css(browser, "textarea#value").get_attribute("value")
    screenshot(browser, tmp_path, "console-saved")

    text = fresh_file(cloud, tmp_path, "system/human.md")
    assert text.endswith("---\nName: Ada Lovelace.\nGrows tomatoes and beans.\n")
    assert "description: What I know about the person I work with." in text


def test_history_shows_diffs_and_restore_brings_a_version_back(
    server: ServerHandle, browser: Any, machine_a: memfs.Agent, cloud: str, tmp_path: Path
) -> None:
    before = (machine_a.root / "system/human.md").read_text()
    edit_and_push(machine_a, "system/human.md", before.replace("Grows tomatoes.", "Grows leeks."))

    browser.get(server.url + "/agents/garden/history/system/human.md")
    commits = all_css(browser, "article.commit")
    assert len(commits) >= 2
    newest = commits[0]
    assert [e.text for e in newest.find_elements("css selector", "pre.diff .del")] == [
        "-Grows tomatoes."
    ]
    assert [e.text for e in newest.find_elements("css selector", "pre.diff .add")] == [
        "+Grows leeks."
    ]
    assert not newest.find_elements("css selector", "form")  # the newest is what is there now
    screenshot(browser, tmp_path, "console-history")

    older = commits[1]
    click_and_wait(browser, older.find_element("css selector", "button"))
    assert "Restored to" in by_css(browser, ".banner.ok").text
    assert "restore system/human.md" in all_css(browser, "article.commit")[0].text
    assert fresh_file(cloud, tmp_path, "system/human.md") == before


def test_a_conflicting_save_is_shown_and_keeps_the_users_text(
    server: ServerHandle, browser: Any, machine_a: memfs.Agent, cloud: str, tmp_path: Path
) -> None:
    browser.get(server.url + "/agents/garden/blocks/system/human.md")
    on_disk = (machine_a.root / "system/human.md").read_text()
    edit_and_push(machine_a, "system/human.md", on_disk.replace("Name: Ada.", "Name: Ada King."))

    mine = HUMAN.replace("Name: Ada.", "Name: Augusta Ada.")
    set_textarea(browser, mine)
    click_and_wait(browser, by_css(browser, "button#save"))
    banner = by_css(browser, ".banner.bad").text
    assert "Not saved" in banner and "changed since you opened it" in banner
    assert by_css(browser, "textarea#value").get_attribute("value") == mine  # nothing lost
    assert "Name: Ada King." in by_css(browser, "#theirs pre").text
    screenshot(browser, tmp_path, "console-conflict")
    assert "Name: Ada King." in fresh_file(cloud, tmp_path, "system/human.md")

    # Saving again, having seen the other version, is a deliberate choice: it goes through.
    click_and_wait(browser, by_css(browser, "button#save"))
    assert "Saved." in by_css(browser, ".banner.ok").text
    assert fresh_file(cloud, tmp_path, "system/human.md").endswith("---\n" + mine)


def test_open_conflicts_and_problems_are_shown(cloud: str, browser: Any, tmp_path: Path) -> None:
    files = {
        "system/human.conflict-1a2b3c4.md": "---\ndescription: the other side\n---\nName: Bo.\n",
        "reference/broken.md": "---\ndescription: never closed\nNo closing fence.\n",
    }
    with (
        make_agent(tmp_path / "a" / "messy", cloud, name="messy", **files),
        running_server(cloud, tmp_path) as server,
    ):
        browser.get(server.url + "/agents/messy")
        conflicts = by_css(browser, "#conflicts").text
        assert "system/human.md" in conflicts
        assert "system/human.conflict-1a2b3c4.md" in conflicts
        problems = by_css(browser, "#problems").text
        assert "reference/broken.md:1" in problems and "no closing '---'" in problems
        screenshot(browser, tmp_path, "console-problems")

        click_and_wait(browser, by_css(browser, "#conflicts a"))
        assert "Name: Ada." in by_css(browser, "#ours pre").text
        assert "Name: Bo." in by_css(browser, "#theirs pre").text
        screenshot(browser, tmp_path, "console-conflict-open")
        click_and_wait(browser, by_css(browser, "#keep button[value=theirs]"))
        assert "Conflict resolved." in by_css(browser, ".banner.ok").text
        assert not all_css(browser, "#conflicts")
    text = fresh_file(cloud, tmp_path, "system/human.md", "messy")
    assert text.endswith("Name: Bo.\n")
    assert not (tmp_path / "fresh-0" / "system/human.conflict-1a2b3c4.md").exists()


def test_login_form_sets_the_cookie_and_lets_the_browser_in(
    cloud: str, machine_a: memfs.Agent, browser: Any, tmp_path: Path
) -> None:
    with running_server(cloud, tmp_path, token=True) as server:
        assert httpx.get(server.url + "/agents/garden?format=json").status_code == 401
        browser.get(server.url + "/agents/garden")
        wait_until(browser, lambda b: "/login" in b.current_url, "the login page")
        screenshot(browser, tmp_path, "console-login")

        by_css(browser, "input#token").send_keys("not-the-token")
        click_and_wait(browser, by_css(browser, "form.login button"))
        assert "not valid" in by_css(browser, ".banner.bad").text
        assert not browser.get_cookies()

        by_css(browser, "input#token").send_keys(server.token)
        click_and_wait(browser, by_css(browser, "form.login button"))
        assert browser.current_url == server.url + "/agents/garden"
        assert by_css(browser, "h1").text == "garden"
        (cookie,) = browser.get_cookies()
        assert cookie["name"] == "memfs_token" and cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert browser.execute_script("return document.cookie") == ""  # not readable by script

        click_and_wait(browser, by_css(browser, "header.top form button"))  # sign out
        assert "/login" in browser.current_url and not browser.get_cookies()
        assert server.token not in server.output()


def test_phone_sized_screen_has_no_horizontal_scroll(
    server: ServerHandle, browser: Any, machine_a: memfs.Agent, tmp_path: Path
) -> None:
    long_name = "reference/" + "a-very-long-unbroken-file-name-" * 3 + ".md"
    edit_and_push(machine_a, long_name, "---\ndescription: " + "word" * 40 + "\n---\n" + "x" * 300)
    browser.set_window_size(390, 844)
    pages = {
        "phone-agents": "/",
        "phone-agent": "/agents/garden",
        "phone-editor": "/agents/garden/blocks/system/human.md",
        "phone-history": "/agents/garden/history/system/human.md",
        "phone-login": "/login",
    }
    for name, path in pages.items():
        browser.get(server.url + path)
        inner, scroll = browser.execute_script(
            "return [window.innerWidth, document.documentElement.scrollWidth]"
        )
        assert inner <= 400, inner
        assert scroll <= inner, f"{path}: {scroll} px wide in a {inner} px window"
        screenshot(browser, tmp_path, name)
        complaints = [entry["message"] for entry in browser.get_log("browser")]
        assert not complaints, f"{path}: the browser complained: {complaints}"
    viewport = by_css(browser, "meta[name=viewport]").get_attribute("content")
    assert "width=device-width" in viewport


def test_hostile_text_is_shown_as_text_and_an_untouched_save_changes_no_byte(
    cloud: str, browser: Any, tmp_path: Path
) -> None:
    hostile = "\n</textarea><script>document.title='owned'</script>\n<b>bold?</b>\n"
    text = "---\ndescription: <img src=x onerror=alert(1)>\n---\n" + hostile
    with (
        make_agent(tmp_path / "a" / "garden", cloud, **{"reference/x.md": text}),
        running_server(cloud, tmp_path) as server,
    ):
        browser.get(server.url + "/agents/garden/blocks/reference/x.md")
        assert browser.title != "owned"
        assert by_css(browser, "textarea#value").get_attribute("value") == hostile
        assert by_css(browser, "input#description").get_attribute("value") == (
            "<img src=x onerror=alert(1)>"
        )
        assert not all_css(browser, "main img") and not all_css(browser, "main script")
        click_and_wait(browser, by_css(browser, "button#save"))
        assert "Saved." in by_css(browser, ".banner.ok").text
        assert fresh_file(cloud, tmp_path, "reference/x.md") == text
        history = httpx.get(server.url + "/agents/garden/history/reference/x.md?format=json")
        assert len(history.json()["commits"]) == 1  # the untouched save made no commit


def push_letta_repo(root: Path, cloud: str, name: str, files: dict[str, str]) -> None:
    """A Letta Code memory folder, adopted by memfs as it is and pushed to ``cloud``."""
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    with memfs.init(root, name=name) as agent:
        add_remote(agent.history, "origin", agent_url(cloud, name))
        assert sync.sync(agent).remotes[0].error is None


def test_a_letta_v1_read_only_block_is_shown_and_never_changed(
    cloud: str, browser: Any, tmp_path: Path
) -> None:
    persona = "---\ndescription: Who I am\nread_only: true\n---\nI am careful.\n"
    files = {
        "system/persona.md": persona,
        "system/human.md": "---\ndescription: The user\n---\nAda.\n",
        "reference/notes.md": "---\ndescription: Notes\n---\nn\n",
    }
    push_letta_repo(tmp_path / "v1" / "memory", cloud, "lettav1", files)
    with running_server(cloud, tmp_path) as server:
        browser.get(server.url + "/agents/lettav1")
        assert "Letta MemFS v1" in by_css(browser, "main").text
        persona_card = by_css(browser, "article.block[id='system/persona.md']")
        assert "read-only" in persona_card.find_element("css selector", "h3").text
        browser.get(server.url + "/agents/lettav1/blocks/system/persona.md")
        assert by_css(browser, "textarea#value").get_attribute("readonly") == "true"
        assert not all_css(browser, "button#save")
        url = server.url + "/agents/lettav1/blocks/system/persona.md"
        opened = httpx.get(url + "?format=json").json()
        form = {"base": opened["base"], "value": "I am reckless.\n"}
        refused = httpx.post(url, data=form, headers={"Origin": server.url})
        assert refused.status_code == 403 and "read-only" in refused.text
        url = server.url + "/agents/lettav1/blocks/system/human.md"
        opened = httpx.get(url + "?format=json").json()
        form = {"base": opened["base"], "value": "Ada Lovelace.\n", "description": "The user"}
        assert httpx.post(url, data=form, headers={"Origin": server.url}).status_code == 303
    assert fresh_file(cloud, tmp_path, "system/persona.md", "lettav1") == persona
    human = "---\ndescription: The user\n---\nAda Lovelace.\n"  # as Letta writes it
    assert fresh_file(cloud, tmp_path, "system/human.md", "lettav1") == human


def test_a_letta_v2_agent_shows_sizes_against_letta_limits(
    cloud: str, browser: Any, tmp_path: Path
) -> None:
    files = {
        "MEMORY.md": "# Memory\n\n- persona.md: who I am\n- projects/: what I work on\n",
        "persona.md": '---\nname: "Persona"\ndescription: "Who I am"\n---\nI am careful.\n',
        "projects/MEMORY.md": "# Projects\n",
        "projects/letta.md": '---\nname: "Letta"\ndescription: "The Letta project"\n---\nL.\n',
    }
    push_letta_repo(tmp_path / "v2" / "memory", cloud, "lettav2", files)
    with running_server(cloud, tmp_path) as server:
        data = httpx.get(server.url + "/agents/lettav2?format=json").json()
        assert data["layout"] == "Letta MemFS v2"
        assert [b["path"] for b in data["pinned"]] == ["MEMORY.md", "persona.md"]
        assert data["core"] == {"chars": sum(len(files[p]) for p in ("MEMORY.md", "persona.md")),
                                "limit": 65536}  # fmt: skip
        assert {b["limit"] for b in data["pinned"]} == {20000}
        browser.get(server.url + "/agents/lettav2")
        assert "/ 65,536 characters" in by_css(browser, "main").text
        assert "The Letta project" in by_css(browser, "ul.tree").text
        screenshot(browser, tmp_path, "console-letta-v2")


# -- what a browser cannot show ---------------------------------------------------------------


def test_a_save_merges_an_edit_of_other_lines_made_meanwhile(
    server: ServerHandle, machine_a: memfs.Agent, cloud: str, tmp_path: Path
) -> None:
    url = server.url + "/agents/garden/blocks/system/human.md"
    opened = httpx.get(url + "?format=json").json()
    on_disk = (machine_a.root / "system/human.md").read_text()
    edit_and_push(machine_a, "system/human.md", on_disk.replace("Name: Ada.", "Name: Ada King."))
    mine = opened["value"].replace("Prefers short answers.", "Prefers long answers.")
    form = {"base": opened["base"], "value": mine, "description": opened["description"]}
    response = httpx.post(url, data=form, headers={"Origin": server.url})
    assert response.status_code == 303, response.text
    text = fresh_file(cloud, tmp_path, "system/human.md")
    assert "Name: Ada King.\n" in text and "Prefers long answers.\n" in text

    stale = {"base": opened["base"], "value": "Name: Bo.\n", "description": ""}
    response = httpx.post(url + "?format=json", data=stale, headers={"Origin": server.url})
    assert response.status_code == 409
    assert response.json()["yours"]["value"] == "Name: Bo.\n"
    assert "Name: Bo." not in fresh_file(cloud, tmp_path, "system/human.md")

    for base in ("", "../etc", "0" * 40, "zz"):  # a version that never was: 409, text kept
        response = httpx.post(url, data={**stale, "base": base}, headers={"Origin": server.url})
        assert response.status_code == 409 and "Name: Bo." in response.text, base
    restore = server.url + "/agents/garden/restore/system/human.md"
    for rev in ("", "../etc", "HEAD~99", "0" * 40):
        response = httpx.post(restore, data={"rev": rev}, headers={"Origin": server.url})
        assert response.status_code == 404, rev


def test_a_save_of_a_block_deleted_meanwhile_gives_the_text_back(
    server: ServerHandle, machine_a: memfs.Agent, cloud: str, tmp_path: Path
) -> None:
    url = server.url + "/agents/garden/blocks/reference/harvest.md"
    opened = httpx.get(url + "?format=json").json()
    (machine_a.root / "reference/harvest.md").unlink()
    assert sync.sync(machine_a).remotes[0].error is None
    form = {"base": opened["base"], "value": "August: 5 kg of beans.\n", "description": "x"}
    response = httpx.post(url, data=form, headers={"Origin": server.url})
    assert response.status_code == 409
    assert "August: 5 kg of beans." in response.text  # on the page, to copy: never lost


def test_a_crlf_file_saved_untouched_from_a_form_keeps_every_byte(
    cloud: str, tmp_path: Path
) -> None:
    text = "---\r\ndescription: from Windows\r\n---\r\nline one\r\nline two\r\n"
    with (
        make_agent(tmp_path / "a" / "garden", cloud, **{"reference/w.md": text}),
        running_server(cloud, tmp_path) as server,
    ):
        url = server.url + "/agents/garden/blocks/reference/w.md"
        opened = httpx.get(url + "?format=json").json()
        assert opened["value"] == "line one\r\nline two\r\n"
        as_a_browser_sends_it = opened["value"]  # a textarea submits CRLF line ends
        form = {
            "base": opened["base"],
            "value": as_a_browser_sends_it,
            "description": opened["description"],
        }
        assert httpx.post(url, data=form, headers={"Origin": server.url}).status_code == 303
        form["value"] = "line one\nline 2\n"  # a client sending LF: the file keeps its CRLF
        assert httpx.post(url, data=form, headers={"Origin": server.url}).status_code == 303
        with memfs.clone(agent_url(cloud, "garden"), tmp_path / "fresh-crlf") as clone:
            data = (clone.root / "reference/w.md").read_bytes()
        assert data == b"---\r\ndescription: from Windows\r\n---\r\nline one\r\nline 2\r\n"


def test_a_conflict_with_markers_is_settled_keeping_both_sides(cloud: str, tmp_path: Path) -> None:
    marked = "---\ndescription: m\n---\n<<<<<<< ours\nA\n=======\nB\n>>>>>>> theirs\n"
    with (
        make_agent(tmp_path / "a" / "garden", cloud, **{"reference/m.md": marked}),
        running_server(cloud, tmp_path) as server,
    ):
        url = server.url + "/agents/garden/conflicts/reference/m.md"
        opened = httpx.get(url + "?format=json").json()
        assert opened["kind"] == "markers" and opened["theirs"] is None
        bad = httpx.post(url, data={"keep": "everything"}, headers={"Origin": server.url})
        assert bad.status_code == 400 and "keep must be ours, theirs or both" in bad.text
        response = httpx.post(url, data={"keep": "both"}, headers={"Origin": server.url})
        assert response.status_code == 303, response.text
        assert httpx.get(url + "?format=json").status_code == 404  # settled
    assert fresh_file(cloud, tmp_path, "reference/m.md") == "---\ndescription: m\n---\nA\nB\n"


def test_posts_from_another_site_are_refused(
    cloud: str, machine_a: memfs.Agent, tmp_path: Path
) -> None:
    with running_server(cloud, tmp_path, token=True) as server:
        url = server.url + "/agents/garden/blocks/system/human.md"
        opened = httpx.get(url + "?format=json", headers=server.auth_headers()).json()
        form = {"base": opened["base"], "value": "Name: Mallory.\n"}
        cookie = {"Cookie": f"memfs_token={server.token}"}
        refused = [
            {**cookie, "Origin": "http://evil.example"},
            {**cookie, "Referer": "http://evil.example/page"},
            {**cookie, "Origin": "null"},
            {**cookie},  # a cookie and neither header: no page of ours sends that
            {**cookie, "Origin": server.url, "Sec-Fetch-Site": "cross-site"},
        ]
        for headers in refused:
            response = httpx.post(url, data=form, headers=headers)
            assert response.status_code == 403, headers
            assert "not sent from this server" in response.text
        login = httpx.post(
            server.url + "/login",
            data={"token": server.token, "next": "//evil.example/"},
            headers={"Origin": "http://evil.example"},
        )
        assert login.status_code == 403 and "set-cookie" not in login.headers
        assert "Mallory" not in fresh_file(cloud, tmp_path, "system/human.md")

        # a script with a token (no cookie, no browser headers) may save; ours may too
        ok = httpx.post(url, data=form, headers=server.auth_headers())
        assert ok.status_code == 303
        base = httpx.get(url + "?format=json", headers=server.auth_headers()).json()["base"]
        behind_a_proxy = {
            **cookie,
            "Origin": "https://memfs.example",
            "X-Forwarded-Host": "memfs.example",
        }
        response = httpx.post(
            url, data={"base": base, "value": "Name: Ada.\n"}, headers=behind_a_proxy
        )
        assert response.status_code == 303
        login = httpx.post(
            server.url + "/login",
            data={"token": server.token, "next": "//evil.example/"},
            headers={"Origin": server.url},
        )
        assert login.status_code == 303 and login.headers["location"] == "/"  # never offsite
        assert "HttpOnly" in login.headers["set-cookie"]
        assert "SameSite=strict" in login.headers["set-cookie"]


HOSTILE_PATHS = [
    "/agents/garden/blocks/..%2F..%2F..%2Fetc%2Fpasswd",
    "/agents/garden/blocks/%2e%2e/%2e%2e/etc/passwd",
    "/agents/garden/blocks/.git/config",
    "/agents/garden/blocks/system%5C..%5C..%5Cx.md",
    "/agents/garden/history/..%2F..%2Fx.md",
    "/agents/..%2F..%2Fetc/blocks/passwd",
    "/agents/%2e%2e",
    "/agents/garden/blocks/system/nope.md",
]


def test_paths_cannot_reach_outside_the_agent(server: ServerHandle) -> None:
    for path in HOSTILE_PATHS:
        response = httpx.get(server.url + path)
        assert response.status_code == 404, path
        assert "root:" not in response.text and "[core]" not in response.text
        assert "Traceback" not in response.text


def test_pages_have_a_json_twin_and_safe_headers(server: ServerHandle) -> None:
    agents = httpx.get(server.url + "/?format=json").json()["agents"]
    assert [a["name"] for a in agents] == ["garden"]
    overview = httpx.get(server.url + "/agents/garden?format=json").json()
    assert [b["path"] for b in overview["pinned"]] == ["system/human.md", "system/persona.md"]
    assert [f["path"] for f in overview["files"]] == ["reference/harvest.md"]
    page = httpx.get(server.url + "/agents/garden")
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "style=" not in page.text and "<script" not in page.text  # the CSP would block them
    missing = httpx.get(server.url + "/agents/nobody?format=json")
    assert missing.status_code == 404 and "nobody" in missing.json()["detail"]
    css = httpx.get(server.url + "/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
