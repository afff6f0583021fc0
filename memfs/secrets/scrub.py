"""Masking secrets in a byte stream as it passes (docs/design-encryption.md §6.1).

A ``Scrubber`` replaces every form of every value (memfs.secrets.forms) by ``NAME=<REDACTED>``,
also when a form is split across chunks, and its output equals the whole stream's replacement
whatever the split. It holds back only the longest tail of what it was given that could still
begin a form (a proper prefix of one): text that cannot begin a secret, such as a prompt, is
passed on at once, without a timer.

Why that is enough: an occurrence starting at ``s`` and not complete in the buffer makes
``buf[s:]`` a proper prefix of a form, so ``len(buf) - s <= hold`` and ``s >= limit``; every
match starting before ``limit`` is therefore decided by what is in the buffer, exactly as in
the whole stream, and everything from ``limit`` on waits for the next chunk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from memfs.secrets.forms import replacement, table, trie_pattern

PROBE = 32  # how many bytes of a held tail are looked up before comparing whole forms


class Scrubber:
    """One stream's masking: ``feed`` each chunk, write what it returns, ``close`` at the end."""

    def __init__(self, values: Mapping[str, str]) -> None:
        names = table(values)
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

    def _sub(self, match: re.Match[bytes]) -> bytes:
        return self._names[match.group()]

    def _hold(self) -> int:
        """The length of the longest tail of the buffer that is a proper prefix of a form."""
        buf = self._buf
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
        buf = self._buf
        limit = len(buf) - self._hold()
        out, pos = [], 0
        for match in self._pattern.finditer(buf):
            if match.start() >= limit:
                break
            out += [buf[pos : match.start()], self._names[match.group()]]
            pos = match.end()
        cut = max(pos, limit)
        out.append(buf[pos:cut])
        self._buf = buf[cut:]
        return b"".join(out)

    def close(self) -> bytes:
        """The rest of the stream, masked."""
        rest, self._buf = self._buf, b""
        if self._pattern is None:
            return rest
        return self._pattern.sub(self._sub, rest)

    def scrub(self, data: bytes) -> bytes:
        """A whole text masked at once (a one-shot ``feed`` + ``close``)."""
        return self.feed(data) + self.close()
