"""Masking secrets in a byte stream as it passes (docs/design-encryption.md §6.1).

A ``Scrubber`` replaces every form of every value (memfs.secrets.forms) by ``NAME=<REDACTED>``,
also when a form is split across chunks, and its output equals the whole stream's replacement
whatever the split. It holds back only the longest tail of what it was given that could still
begin a form (a proper prefix of one): text that cannot begin a secret, such as a prompt, is
passed on at once, without a timer.

Wrapped lines: ``base64`` wraps its output at 76 characters, PEM and ``openssl base64`` at
64, so a value's base64 form may be cut by a line break anywhere. A line break (``\\n`` or
``\\r\\n``) ending a line whose last characters are a run of base64 exactly ``WRAP_WIDTHS``
long (what such a tool writes, after a prefix such as ``data: `` or none) is a *soft* one: forms are
matched in the stream with its soft breaks left out (``flat``), and a match is mapped back
to the bytes it spans, soft breaks inside it included. Whether a break is soft depends only on
the line before it, so the stream's flat view grows as the stream does; every other line
break stays (an ordinary line ending in what could begin a form is not held back for the
next line). A multi-line value's own forms are matched as they are and with their soft
breaks left out too.

Why that is enough: an occurrence starting at ``s`` and not complete in the buffer makes
``flat[s:]`` a proper prefix of a form, so its length is at most ``hold`` and ``s >= limit``;
every match starting before ``limit`` is therefore decided by what is in the buffer, exactly
as in the whole stream, and everything from ``limit`` on waits for the next chunk (a ``\\r``
ending the buffer after a line of a wrap width is taken as the start of a soft break until
the next chunk says).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping

from memfs.secrets.forms import MIN_FORM, replacement, table, trie_pattern

PROBE = 32  # how many bytes of a held tail are looked up before comparing whole forms
WRAP_WIDTHS = (64, 76)  # PEM and openssl base64; base64(1), MIME and Python's encodebytes
CR = 13
B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_")
RUN_CAP = max(WRAP_WIDTHS) + 1  # a run this long is longer than any wrap width


def b64_run(data: bytes, end: int, before: int) -> int:
    """How many base64 characters end at ``end`` in ``data`` (at most ``RUN_CAP``), with
    ``before`` more when the run reaches the start of ``data``."""
    at = end
    while at > 0 and end - at < RUN_CAP and data[at - 1] in B64:
        at -= 1
    return min(end - at + (before if at == 0 else 0), RUN_CAP)


def soft_breaks(buf: bytes, run: int, after_cr: bool, final: bool) -> list[int]:
    """The positions in ``buf`` of the bytes of its soft line breaks: those ending a line
    whose last characters are a run of base64 exactly a wrap width long (see the module's
    docstring). ``run``: the base64 run the stream before ``buf`` ended with; ``after_cr``:
    the byte just before ``buf`` was a ``\\r`` (passed on: a ``\\n`` first in ``buf`` is then
    taken as it is); not ``final``: a ``\\r`` ending ``buf`` after such a run counts as one
    (its ``\\n`` may come next)."""
    gone: list[int] = []
    at = buf.find(b"\n")
    while at != -1:
        cr = at > 0 and buf[at - 1] == CR
        if not (at == 0 and after_cr) and b64_run(buf, at - cr, run) in WRAP_WIDTHS:
            gone += [at - 1, at] if cr else [at]
        at = buf.find(b"\n", at + 1)
    if not final and buf.endswith(b"\r") and b64_run(buf, len(buf) - 1, run) in WRAP_WIDTHS:
        gone.append(len(buf) - 1)
    return gone


def _without(data: bytes, gone: list[int]) -> bytes:
    """``data`` without the bytes at the positions ``gone`` (sorted)."""
    parts, last = [], 0
    for at in gone:
        parts.append(data[last:at])
        last = at + 1
    parts.append(data[last:])
    return b"".join(parts)


class Scrubber:
    """One stream's masking: ``feed`` each chunk, write what it returns, ``close`` at the end."""

    def __init__(self, values: Mapping[str, str]) -> None:
        names = table(values)
        for form, name in list(names.items()):  # a multi-line value as the flat view has it
            if b"\n" in form:
                flat = _without(form, soft_breaks(form, 0, False, True))
                if len(flat) >= MIN_FORM:
                    names.setdefault(flat, name)
        self._names = {form: replacement(name) for form, name in names.items()}
        ordered = sorted(names, key=lambda form: (-len(form), form))  # longest wins
        self._pattern = trie_pattern(ordered)
        # proper prefixes up to PROBE bytes as a set; longer forms by their first PROBE bytes
        # (every proper prefix of every form in one set costs len**2: GBs for a 20 KB value)
        self._short = {
            form[:k] for form in ordered for k in range(1, min(PROBE, len(form) - 1) + 1)
        }
        self._long: dict[bytes, list[bytes]] = {}
        for form in ordered:
            if len(form) > PROBE + 1:
                self._long.setdefault(form[:PROBE], []).append(form)
        self._longest = len(ordered[0]) if ordered else 0
        self._buf = b""
        self._run = 0  # the base64 run the stream passed on so far ends with
        self._after_cr = False  # the byte before the buffer was a \r

    def _hold(self, buf: bytes) -> int:
        """The length of the longest tail of ``buf`` that is a proper prefix of a form."""
        n = len(buf)
        for i in range(max(0, n - (self._longest - 1)), n):  # the longest tail first
            if n - i <= PROBE:
                if buf[i:] in self._short:
                    return n - i
                continue
            longer = self._long.get(buf[i : i + PROBE])
            if longer and any(len(f) > n - i and f.startswith(buf[i:]) for f in longer):
                return n - i
        return 0

    def feed(self, chunk: bytes) -> bytes:
        """What of the stream so far can be passed on, masked."""
        if self._pattern is None:
            return chunk
        self._buf += chunk
        return self._mask(final=False)

    def close(self) -> bytes:
        """The rest of the stream, masked."""
        if self._pattern is None:
            rest, self._buf = self._buf, b""
            return rest
        return self._mask(final=True)

    def _mask(self, final: bool) -> bytes:
        """Pass on the buffer up to what could still begin a form (all of it when ``final``),
        masked; keep the rest. Matching runs on the buffer without its soft line breaks
        (``flat``); ``at`` maps a position in ``flat`` back to one in the buffer."""
        assert self._pattern is not None
        buf = self._buf
        breaks = b"\n" in buf or buf.endswith(b"\r")
        gone = soft_breaks(buf, self._run, self._after_cr, final) if breaks else []
        if gone:
            flat = _without(buf, gone)
            shifted = [p - k for k, p in enumerate(gone)]  # where each break sits in flat

            def at(j: int) -> int:
                return j + bisect_right(shifted, j)

            def end(j: int) -> int:  # a match's end: just after its last byte
                return at(j - 1) + 1
        else:
            flat = buf

            def at(j: int) -> int:
                return j

            end = at
        held = 0 if final else self._hold(flat)
        limit = len(buf) if held == 0 else at(len(flat) - held)
        flat_limit = len(flat) - held
        out, pos = [], 0
        for match in self._pattern.finditer(flat):
            if match.start() >= flat_limit:
                break
            start = at(match.start())
            out += [buf[pos:start], self._names[match.group()]]
            pos = end(match.end())
        cut = len(buf) if final else max(pos, limit)
        out.append(buf[pos:cut])
        self._passed(buf[:cut], final)
        self._buf = buf[cut:]
        return b"".join(out)

    def _passed(self, data: bytes, final: bool) -> None:
        """Follow the line the stream is on past ``data`` (a new stream after ``final``)."""
        if final:
            self._run, self._after_cr = 0, False
        elif data:
            self._run = b64_run(data, len(data), self._run)
            self._after_cr = data[-1] == CR

    def scrub(self, data: bytes) -> bytes:
        """A whole text masked at once (a one-shot ``feed`` + ``close``)."""
        return self.feed(data) + self.close()
