"""JavaScript's ``a.localeCompare(b)`` as a Python sort key, without ICU.

Letta Code sorts memory labels and tree entries with ``localeCompare`` (ICU's root collation
under node's default ``en-US`` locale), and a prompt that must match Letta's byte for byte must
list them in the same order. Python's default sort compares code points and differs: ICU puts
punctuation before digits before letters, ignores case and accents unless everything else is
equal (``a`` < ``B``, ``e`` < ``é`` < ``f``, then lowercase before uppercase), and skips
control and format characters (``x\u200by`` equals ``xy``).

``collation_key`` builds the three levels of the Unicode Collation Algorithm from the standard
library's ``unicodedata``: primary (the letter or digit or symbol), secondary (accents),
tertiary (case, compatibility forms). Checked against node (ICU 78) in
tests/test_context_letta.py: exact for ASCII, Latin letters with accents, ``ß æ œ ł ø đ ð þ``
and dotless i, compatibility forms (``ﬁ ² ½ Ⅻ``), digits of every script (Arabic-Indic one
equals ``1``), and the order of scripts (Latin, Greek, Cyrillic, Hebrew, Arabic, Hangul, kana,
Han), and of ASCII and the common non-ASCII punctuation and symbols (``_MARKS_IN_ORDER``).
Approximate: rarer punctuation and symbols (placed after a common mark of the same kind).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# ICU's root order of ASCII punctuation and symbols and of the common non-ASCII ones (typographic
# quotes and dashes, bullets, Latin-1 signs, arrows, check marks, currencies), taken from node.
_MARKS_IN_ORDER = (
    " _-\u2010\u2012\u2013\u2014\u2015\u2053,;\u204f:!\u00a1?\u00bf\u203d.\u00b7\u2055\u2056"
    "\u2058\u2059\u205a\u205b\u205c\u205d\u205e'\u2018\u2019\u201a\u201b\u2039\u203a\"\u201c"
    "\u201d\u201e\u201f\u00ab\u00bb()[]{}\u2045\u2046\u2016\u00a7\u00b6\u204b@*\u204e\u2051/"
    "\\&\u204a#%\u2030\u2031\u2020\u2021\u2022\u2023\u2027\u2043\u204c\u204d\u2032\u2035"
    "\u2038\u203b\u203f\u2054\u2040\u2050\u2041\u2042`^\u00b0\u00a9\u00ae\u2190\u2192\u2191"
    "\u2193\u2194\u21d2+\u00b1\u00f7\u00d7<=>\u00ac|\u00a6~\u2212\u2052\u2044\u221e\u2264"
    "\u2265\u25a0\u25a1\u25b6\u25cb\u25cf\u2605\u2606\u2705\u2713\u2714\u2717\u274c\u2764"
    "\u2b50\u00a4\u00a2$\u00a3\u00a5\u20a0\u20a1\u20a2\u20a3\u20a4\u20a5\u20a6\u20a9\u20aa"
    "\u20ab\u20ac\u20ad\u20ae\u20af\u20b0\u20b1\u20b2\u20b3\u20b4\u20b5\u20b6\u20b7\u20b8"
    "\u20b9\u20ba\u20bb\u20bc\u20bd\u20be\u20bf\u20c0"
)
# Quotes ICU weighs as the ASCII quote with a secondary difference, in this order.
_QUOTE_VARIANTS = ("'\u2018\u2019\u201a\u201b", '"\u201c\u201d\u201e\u201f')
_MARK_RANK = {char: rank for rank, char in enumerate(_MARKS_IN_ORDER)}
_MARK_SECONDARY: dict[str, int] = {}
for _quotes in _QUOTE_VARIANTS:
    for _index, _quote in enumerate(_quotes):
        _MARK_RANK[_quote] = _MARK_RANK[_quotes[0]]
        _MARK_SECONDARY[_quote] = _index
_WHITESPACE = "\t\n\x0b\x0c\r"
# Where another mark of each Unicode category sorts: just after this one (emoji, for one, come
# after the symbols above and before the currencies).
_ANCHOR_BY_CATEGORY = {
    "Zs": " ",
    "Zl": " ",
    "Zp": " ",
    "Pc": "_",
    "Pd": "\u2053",
    "Ps": "}",
    "Pe": "}",
    "Pi": "\u00bb",
    "Pf": "\u00bb",
    "Po": "\u2042",
    "Sm": "\u2265",
    "Sk": "^",
    "So": "\u2b50",
    "Sc": "\u20c0",
}
# Latin letters ICU treats as a base letter with a secondary difference (d < đ < ð < e).
_SECONDARY_LETTERS = {"đ": ("d", 1), "ð": ("d", 2), "ł": ("l", 1), "ø": ("o", 1)}
# Latin letters ICU expands to two, with a secondary difference between (ae < æ < Æ < af).
_EXPANSIONS = {"æ": "ae", "œ": "oe", "ß": "ss"}
_EXPANSION_SECONDARY = 1000
# Latin letters of their own: dotless i right after i, þ after z.
_OWN_LETTERS = {"\u0131": (8, 1), "þ": (26, 0)}
# Accents in ICU's secondary order (acute first); others follow by code point.
_ACCENTS = (
    "\u0301\u0300\u0306\u0302\u030c\u030a\u0308\u030b\u0303\u0307\u0327\u0328\u0304\u0323\u0331"
)

_MARK_BAND, _DIGIT_BAND, _LETTER_BAND = 0, 1, 2
Weight = tuple[int, ...]


def collation_key(text: str) -> tuple[tuple[Weight, ...], tuple[int, ...], tuple[int, ...]]:
    """A key that orders strings as JavaScript's ``localeCompare`` does (see the module)."""
    primaries: list[Weight] = []
    secondaries: list[int] = []
    tertiaries: list[int] = []
    for char in unicodedata.normalize("NFD", text):
        for primary, secondary, tertiary in _elements(char):
            if primary is not None:
                primaries.append(primary)
            if secondary is not None:
                secondaries.append(secondary)
            if tertiary is not None:
                tertiaries.append(tertiary)
    return tuple(primaries), tuple(secondaries), tuple(tertiaries)


Element = tuple[Weight | None, int | None, int | None]


@lru_cache(maxsize=4096)
def _elements(char: str) -> tuple[Element, ...]:
    """The collation elements of one (NFD-decomposed) character."""
    category = unicodedata.category(char)
    if category in ("Mn", "Me"):
        accent = _ACCENTS.find(char)
        return ((None, 1 + (accent if accent >= 0 else len(_ACCENTS) + ord(char)), None),)
    if char in _WHITESPACE:
        return (((_MARK_BAND, _WHITESPACE.index(char) - len(_WHITESPACE)), 0, 0),)
    if category in ("Cc", "Cf", "Cs", "Co", "Cn") and char != "\x85":
        return ()  # ignorable
    compatible = unicodedata.normalize("NFKD", char)
    if compatible != char:
        variant = 1
        return tuple(
            (primary, secondary, None if tertiary is None else tertiary + variant)
            for part in compatible
            for primary, secondary, tertiary in _elements(part)
        )
    lower = char.lower()
    case = 0 if lower == char or len(lower) != 1 else 2
    folded = lower if len(lower) == 1 else char
    if folded in _EXPANSIONS:
        first, second = (_latin(part) for part in _EXPANSIONS[folded])
        return ((first, 0, case), (None, _EXPANSION_SECONDARY, None), (second, 0, case))
    if 0x30A1 <= ord(folded) <= 0x30F6:  # katakana: the hiragana letter, then a variant
        return (((*_primary(chr(ord(folded) - 0x60), category),), 0, case + 1),)
    if folded in _SECONDARY_LETTERS:
        base, secondary = _SECONDARY_LETTERS[folded]
        return ((_latin(base), 0, case), (None, secondary, None))
    return ((_primary(folded, category), _MARK_SECONDARY.get(folded, 0), case),)


def _latin(letter: str) -> Weight:
    return (_LETTER_BAND, 0, ord(letter) - ord("a"), 0)


def _primary(char: str, category: str) -> Weight:
    if "a" <= char <= "z":
        return _latin(char)
    if char in _OWN_LETTERS:
        return (_LETTER_BAND, 0, *_OWN_LETTERS[char])
    if char in _MARK_RANK:
        return (_MARK_BAND, _MARK_RANK[char], 0)
    if category == "Nd":
        return (_DIGIT_BAND, unicodedata.decimal(char))
    if category[0] in "PSZ" or char == "\x85":
        anchor = " " if char == "\x85" else _ANCHOR_BY_CATEGORY.get(category, "\u2b50")
        return (_MARK_BAND, _MARK_RANK[anchor], 1, ord(char))
    if category[0] == "N":
        return (_DIGIT_BAND, 10, ord(char))
    return (_LETTER_BAND, _script_group(ord(char)), ord(char))


def _script_group(code: int) -> int:
    """ICU's order of scripts: Latin, most others by code point, Hangul, kana, Han."""
    if 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F or 0xAC00 <= code <= 0xD7AF:
        return 2
    if 0x3040 <= code <= 0x30FF:
        return 3
    if 0x3400 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x3FFFF:
        return 4
    return 1
