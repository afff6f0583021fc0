"""Masking secrets in a byte stream as it passes (docs/design-encryption.md §6.1).

A ``Scrubber`` replaces every form of every value (memfs.secrets.forms) by ``NAME=<REDACTED>``,
also when a form is split across chunks, and its output equals the whole stream's replacement
whatever the split. It holds back only the longest tail of what it was given that could still
begin a form (a proper prefix of one): text that cannot begin a secret, such as a prompt, is
passed on at once, without a timer.

Line breaks: ``base64`` wraps its output at 76 characters, PEM at 64, so a value's base64
form may be cut by ``\n`` (or ``\r\n``) anywhere. Forms are therefore matched in the
stream with its line breaks left out (and forms without theirs: a multi-line value matches
however it is wrapped); a match is mapped back to the bytes it spans, line breaks inside it
included, and everything around it keeps its line breaks. A buffer without a line break takes
the same path as before at the same cost.

Why that is enough: an occurrence starting at ``s`` and not complete in the buffer makes
``buf[s:]`` (line breaks left out) a proper prefix of a form, so its length is at most
``hold`` and ``s >= limit``; every match starting before ``limit`` is therefore decided by what
is in the buffer, exactly as in the whole stream, and everything from ``limit`` on waits for
the next chunk.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping

from memfs.secrets.forms import MIN_FORM, replacement, table, trie_pattern

PROBE = 32  # how many bytes of a held tail are looked up before comparing whole forms
_BREAKS = re.compile(rb"[\r\n]")


def _unbroken(data: bytes) -> bytes:
    """``data`` without its line breaks."""
    return data.replace(b"\n", b"").replace(b"\r", b"")


class Scrubber:
    """One stream's masking: ``feed`` each chunk, write what it returns, ``close`` at the end."""

    def __init__(self, values: Mapping[str, str]) -> None:
        names: dict[bytes, str] = {}
        for form, name in table(values).items():  # matched with line breaks left out
            unbroken = _unbroken(form)
            if len(unbroken) >= MIN_FORM:
                names.setdefault(unbroken, name)
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
        masked; keep the rest. Matching runs on the buffer without its line breaks
        (``flat``); ``at`` maps a position in ``flat`` back to one in the buffer."""
        assert self._pattern is not None
        buf = self._buf
        breaks = [m.start() for m in _BREAKS.finditer(buf)]
        if breaks:
            flat = _unbroken(buf)
            shifted = [p - k for k, p in enumerate(breaks)]  # where each break sits in flat

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
        cut = max(pos, limit)
        out.append(buf[pos:cut])
        self._buf = buf[cut:]
        return b"".join(out)

    def scrub(self, data: bytes) -> bytes:
        """A whole text masked at once (a one-shot ``feed`` + ``close``)."""
        return self.feed(data) + self.close()
