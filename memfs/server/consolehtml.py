"""The console's pages as HTML, rendered on the server from ``consoleviews``' data.

Every value that comes from an agent, a request or the store goes through ``esc`` (or ``url``
for a path in a link); templates are ``string.Template`` files in ``templates/``, filled with
fragments that are already escaped. No script: forms and links do everything.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import quote

Crumb = tuple[str, str | None]  # text, link
NONE = '<span class="muted">&ndash;</span>'


def esc(value: object) -> str:
    """``value`` as HTML text, quotes included (safe in an attribute too)."""
    return html.escape("" if value is None else str(value), quote=True)


def url(*parts: str) -> str:
    """A console URL from its parts, each percent-encoded (a memory path keeps its slashes)."""
    return "/" + "/".join(quote(part, safe="/") for part in parts)


@cache
def _template(name: str) -> Template:
    text = resources.files("memfs.server").joinpath("templates", name).read_text("utf-8")
    return Template(text)


STATIC = {"console.css": "text/css", "favicon.svg": "image/svg+xml"}


@cache
def static(name: str) -> bytes:
    """One of the console's static files (``STATIC``): a stylesheet and an icon."""
    return resources.files("memfs.server").joinpath("static", name).read_bytes()


def page(title: str, body: str, crumbs: list[Crumb] | None = None, signed_in: bool = False) -> str:
    """A whole page around ``body`` (already HTML)."""
    crumbs = crumbs or []
    trail = " / ".join(
        f'<a href="{esc(link)}">{esc(text)}</a>' if link else esc(text) for text, link in crumbs
    )
    logout = ""
    if signed_in:
        logout = (
            '<form method="post" action="/logout">'
            '<button class="link" type="submit">Sign out</button></form>'
        )
    return _template("page.html").substitute(
        title=esc(title), crumbs=trail, logout=logout, body=body
    )


def banner(kind: str, title: str, text: str = "") -> str:
    """A message box: ``ok``, ``warn`` or ``bad``."""
    return (
        f'<div class="banner {kind}" role="status"><strong>{esc(title)}</strong>{esc(text)}</div>'
    )


def login(next_url: str, message: str = "") -> str:
    body = _template("login.html").substitute(
        next=esc(next_url), message=banner("bad", message) if message else ""
    )
    return page("Sign in", body)


def error(status: int, message: str, kept: str | None = None) -> str:
    """An error page; ``kept`` is text the user typed that could not be saved, shown to copy."""
    titles = {
        400: "Cannot do that",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        502: "The store failed",
        503: "Busy: try again",
    }
    title = titles.get(status, "Something went wrong")
    body = f"<h1>{esc(title)}</h1>" + banner("bad", message)
    if kept is not None:
        body += (
            '<section class="card" id="kept"><h3>Your text (not saved)</h3>'
            f"<pre>{esc(kept)}</pre></section>"
        )
    return page(title, body + '<p><a href="/">All agents</a></p>')


def agents(rows: list[dict[str, Any]], signed_in: bool) -> str:
    """The agents of the cloud: name, description, last push, host, live."""
    if not rows:
        body = '<h1>Agents</h1><p class="muted">No agent in this cloud yet.</p>'
        return page("Agents", body, signed_in=signed_in)
    lines = []
    for row in rows:
        lines.append(
            "<tr>"
            f'<td class="name"><a href="{esc(url("agents", row["name"]))}">'
            f"{esc(row['name'])}</a></td>"
            f'<td data-label="Description">{esc(row["description"]) or NONE}</td>'
            f'<td data-label="Last push">{_when(row["pushed_at"])}</td>'
            f'<td data-label="Host">{esc(row["host"]) or NONE}</td>'
            f'<td data-label="Live">{esc(row.get("live")) or NONE}</td>'
            "</tr>"
        )
    table = (
        '<table class="agents"><thead><tr><th>Agent</th><th>Description</th><th>Last push</th>'
        "<th>Host</th><th>Live</th></tr></thead><tbody>" + "".join(lines) + "</tbody></table>"
    )
    return page("Agents", f"<h1>Agents</h1>{table}", signed_in=signed_in)


def _when(stamp: str | None) -> str:
    if not stamp:
        return NONE
    return f'<time datetime="{esc(stamp)}">{esc(stamp.replace("T", " ")[:19])}</time>'


def meter(chars: int, limit: int | None) -> str:
    """``chars / limit characters`` with a bar; just the count when nothing limits it."""
    if not limit:
        return f'<div class="meter">{chars:,} characters</div>'
    over = " over" if chars > limit else ""
    # <meter>, not a styled bar: the page's CSP allows no inline style
    return (
        f'<div class="meter{over}"><meter min="0" max="{limit}" value="{min(chars, limit)}" '
        f'low="{limit * 3 // 4}" high="{limit * 9 // 10}" optimum="0"></meter>'
        f"{chars:,} / {limit:,} characters</div>"
    )


def overview(data: dict[str, Any], signed_in: bool, notice: str = "") -> str:
    """An agent's memory: conflicts, problems, pinned blocks, then the tree of other files."""
    name = data["agent"]["name"]
    parts = [
        f"<h1>{esc(name)}</h1>",
        notice,
        f'<p class="muted">{esc(data["agent"].get("description") or "")}</p>',
        f'<p class="muted">{esc(data["layout"])} · head '
        f"<code>{esc((data['head'] or '')[:7])}</code>"
        f" · last push {_when(data['agent'].get('pushed_at'))}</p>",
    ]
    if data["conflicts"]:
        items = "".join(
            f'<li><a href="{esc(conflict_url(name, c))}">{esc(c["path"])}</a> '
            + (
                f"(other version: <code>{esc(c['copy_path'])}</code>)"
                if c["copy_path"]
                else "(conflict markers inside)"
            )
            + "</li>"
            for c in data["conflicts"]
        )
        parts.append(
            '<section class="banner warn" id="conflicts"><strong>Open conflicts</strong>'
            f"<ul>{items}</ul></section>"
        )
    if data["problems"]:
        items = "".join(
            f'<li class="{esc(p["severity"])}"><code>{esc(p["path"])}:{esc(p["line"])}</code> '
            f"{esc(p['message'])}</li>"
            for p in data["problems"]
        )
        parts.append(
            '<section class="card problems" id="problems"><h3>Problems</h3>'
            f"<ul>{items}</ul></section>"
        )
    parts.append("<h2>Pinned memory</h2>")
    if data["core"]["limit"]:
        parts.append(meter(data["core"]["chars"], data["core"]["limit"]))
    for block in data["pinned"]:
        link = url("agents", name, "blocks", block["path"])
        ro = '<span class="tag">read-only</span>' if block["read_only"] else ""
        parts.append(
            f'<article class="card block" id="{esc(block["path"])}">'
            f'<h3><a href="{esc(link)}">{esc(block["label"])}</a>{ro}</h3>'
            f'<div class="muted">{esc(block["description"] or "")}</div>'
            f"{meter(block['chars'], block['limit'])}<pre>{esc(block['value'])}</pre></article>"
        )
    if not data["pinned"]:
        parts.append('<p class="muted">No pinned block.</p>')
    parts.append("<h2>Other memory</h2>")
    parts.append(_tree(name, data["files"]) if data["files"] else '<p class="muted">None.</p>')
    crumbs: list[Crumb] = [("agents", "/"), (name, None)]
    return page(name, "\n".join(parts), crumbs, signed_in)


def _tree(name: str, files: list[dict[str, Any]]) -> str:
    """Files as nested folders, each file with its description."""
    root: dict[str, Any] = {}
    for entry in files:
        node = root
        *folders, _ = entry["path"].split("/")
        for folder in folders:
            node = node.setdefault(folder + "/", {})
        node[entry["path"].rsplit("/", 1)[-1]] = entry

    def render(node: dict[str, Any], css: str) -> str:
        items = []
        for key in sorted(node):
            value = node[key]
            if key.endswith("/"):  # a folder: a file's name never ends with one
                items.append(
                    f'<li><span class="folder">{esc(key)}</span>{render(value, "tree")}</li>'
                )
            else:
                link = url("agents", name, "blocks", value["path"])
                items.append(
                    f'<li><a href="{esc(link)}">{esc(key)}</a> '
                    f'<span class="muted">{esc(value["description"] or "")}</span></li>'
                )
        return f'<ul class="{css}">' + "".join(items) + "</ul>"

    return render(root, "tree root")


def block(
    name: str,
    data: dict[str, Any],
    signed_in: bool,
    notice: str = "",
    mine: dict[str, str] | None = None,
) -> str:
    """A block's editor: description and value, saved with the ``base`` it was opened on.

    ``mine`` (after a 409) is the user's own text, put back in the form; the version saved
    meanwhile is shown beside it."""
    path = data["path"]
    action = url("agents", name, "blocks", path)
    value = mine["value"] if mine else data["value"]
    description = mine.get("description", "") if mine else (data["description"] or "")
    parts = [f"<h1>{esc(data['label'])}</h1>", notice]
    tags = ("pinned · " if data["pinned"] else "") + ("read-only · " if data["read_only"] else "")
    parts.append(f'<p class="muted">{esc(tags)}<code>{esc(path)}</code></p>')
    parts.append(meter(data["chars"], data["limit"]))
    if data["problems"]:
        items = "".join(
            f'<li class="{esc(p["severity"])}">line {esc(p["line"])}: {esc(p["message"])}</li>'
            for p in data["problems"]
        )
        parts.append(f'<ul class="problems">{items}</ul>')
    if mine:
        parts.append(
            '<section class="card" id="theirs"><h3>The version saved meanwhile</h3>'
            f'<div class="muted">{esc(data["description"] or "")}</div>'
            f"<pre>{esc(data['value'])}</pre></section>"
        )
    disabled = " readonly" if data["read_only"] else ""
    fields = [f'<input type="hidden" name="base" value="{esc(data["base"])}">']
    if data["raw"]:
        fields.append(
            '<p class="hint">memfs cannot read this file\'s front matter: edit the whole file.</p>'
        )
    else:
        fields.append(
            '<label for="description">Description</label>'
            '<input id="description" name="description" type="text" '
            f'value="{esc(description)}"{disabled}>'
        )
    # a newline right after <textarea>: the parser drops one, so the value's own first one stays
    fields.append(
        '<label for="value">Value</label>'
        f'<textarea id="value" name="value" spellcheck="false"{disabled}>\n{esc(value)}</textarea>'
    )
    save = "" if data["read_only"] else '<button type="submit" id="save">Save</button>'
    history = url("agents", name, "history", path)
    fields.append(
        f'<div class="actions">{save}<a href="{esc(history)}" id="history">History</a></div>'
    )
    parts.append(
        f'<form class="edit" method="post" action="{esc(action)}" accept-charset="utf-8">'
        + "".join(fields)
        + "</form>"
    )
    crumbs: list[Crumb] = [("agents", "/"), (name, url("agents", name)), (data["label"], None)]
    return page(data["label"], "\n".join(parts), crumbs, signed_in)


def history(name: str, data: dict[str, Any], signed_in: bool, notice: str = "") -> str:
    """The commits that changed a block, each with its diff and a restore button."""
    path = data["path"]
    parts = [f"<h1>History of {esc(data['label'])}</h1>", notice]
    editor = url("agents", name, "blocks", path)
    parts.append(f'<p><a href="{esc(editor)}">Edit</a> · <code>{esc(path)}</code></p>')
    restore = url("agents", name, "restore", path)
    for index, commit in enumerate(data["commits"]):
        button = ""
        if index > 0 and commit["exists"]:
            button = (
                f'<form method="post" action="{esc(restore)}">'
                f'<input type="hidden" name="rev" value="{esc(commit["sha"])}">'
                '<button class="secondary" type="submit">Restore this version</button></form>'
            )
        where = f" on {esc(commit['host'])}" if commit.get("host") else ""
        parts.append(
            f'<article class="card commit" id="c-{esc(commit["short"])}"><header>'
            f'<span class="sha">{esc(commit["short"])}</span>'
            f"<strong>{esc(commit['summary'])}</strong>"
            f'<span class="muted">{esc(commit["author"])}{where}, '
            f"{esc(str(commit['date'])[:19].replace('T', ' '))}</span>"
            f"</header>{diff(commit['diff'])}{button}</article>"
        )
    if not data["commits"]:
        parts.append('<p class="muted">No commit changed this file.</p>')
    crumbs: list[Crumb] = [
        ("agents", "/"),
        (name, url("agents", name)),
        (data["label"], editor),
        ("history", None),
    ]
    return page(f"History of {data['label']}", "\n".join(parts), crumbs, signed_in)


def diff(text: str) -> str:
    """A unified diff with added, removed and hunk lines marked (the header lines left out)."""
    lines = []
    for line in text.splitlines():
        if line.startswith(("diff --git", "index ", "--- ", "+++ ", "new file", "deleted file")):
            continue
        css = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "")
        lines.append(
            f'<span class="{css}">{esc(line) or " "}</span>'
            if css
            else f"<span>{esc(line) or ' '}</span>"
        )
    return '<pre class="diff">' + "".join(lines) + "</pre>"


def conflict_url(name: str, found: dict[str, Any]) -> str:
    link = url("agents", name, "conflicts", found["path"])
    return link + (f"?copy={quote(found['copy_path'], safe='')}" if found["copy_path"] else "")


def conflict(name: str, data: dict[str, Any], signed_in: bool) -> str:
    """Both sides of an open conflict, and the choice of what to keep."""
    path = data["path"]
    parts = [f"<h1>Conflict in {esc(path)}</h1>"]
    if data["kind"] == "copy":
        parts.append(
            '<p class="muted">Two machines changed this file at once. Both versions are kept '
            "until you choose.</p>"
            f'<section class="card" id="ours"><h3>This version <code>{esc(path)}</code></h3>'
            f"<pre>{esc(data['ours'])}</pre></section>"
            '<section class="card" id="theirs"><h3>The other version '
            f"<code>{esc(data['copy_path'])}</code></h3><pre>{esc(data['theirs'])}</pre></section>"
        )
        labels = {"ours": "Keep this version", "theirs": "Keep the other version"}
    else:
        parts.append(
            '<p class="muted">The file holds both versions between conflict markers.</p>'
            f'<section class="card" id="ours"><pre>{esc(data["ours"])}</pre></section>'
        )
        labels = {"ours": "Keep the upper side", "theirs": "Keep the lower side"}
    labels["both"] = "Keep both"
    action = url("agents", name, "conflicts", path)
    copy = data["copy_path"] or ""
    buttons = "".join(
        f'<form method="post" action="{esc(action)}"><input type="hidden" name="copy" '
        f'value="{esc(copy)}"><button type="submit" name="keep" value="{keep}" '
        f'class="{"secondary" if keep != "ours" else ""}">{esc(label)}</button></form>'
        for keep, label in labels.items()
    )
    parts.append(f'<div class="actions" id="keep">{buttons}</div>')
    crumbs: list[Crumb] = [("agents", "/"), (name, url("agents", name)), ("conflict", None)]
    return page(f"Conflict in {path}", "\n".join(parts), crumbs, signed_in)
