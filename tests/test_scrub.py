"""The streaming Scrubber (docs/design-encryption.md §6.1): split anywhere, it writes what the
whole stream's replacement writes, no form of a value survives, and nothing that cannot begin
a secret is held back."""

from __future__ import annotations

import base64
import json
import random
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memfs.secrets.forms import MIN_MASKED, forms, is_masked
from memfs.secrets.scrub import Scrubber

ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=-_%"\\ \n:é'


def rendered(value: str) -> list[bytes]:
    """Ways a program prints ``value``: as it is, encoded, embedded in longer encodings."""
    raw = value.encode()
    out = [raw, quote(value, safe="").encode(), quote_plus(value).encode()]
    out += [json.dumps(value).encode(), json.dumps({"k": value}).encode(), raw.hex().encode()]
    out.append(raw.hex().upper().encode())
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for before in (b"", b"x", b"xy", b"xyz"):
            for after in (b"", b"!", b"!?"):
                out.append(encode(before + raw + after))
                out.append(encode(before + raw + after).rstrip(b"="))
    return out


def split_feed(scrubber: Scrubber, data: bytes, cuts: list[int]) -> bytes:
    out, last = [], 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out.append(scrubber.feed(data[last:cut]))
        last = cut
    return b"".join(out) + scrubber.close()


def assert_clean(output: bytes, values: dict[str, str]) -> None:
    for name, value in values.items():
        for form in forms(value):
            assert form not in output, f"a form of {name} survived"


values_strategy = st.dictionaries(
    st.sampled_from(["API_KEY", "TOKEN", "DB_PASSWORD"]),
    st.text(alphabet=ALPHABET, min_size=MIN_MASKED, max_size=48),
    min_size=1,
    max_size=3,
)


@settings(max_examples=150)
@given(
    values=values_strategy,
    noise=st.lists(st.text(alphabet=ALPHABET, max_size=20), min_size=1, max_size=6),
    picks=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=30),
)
def test_split_anywhere_equals_the_whole_stream_and_leaks_no_form(
    values: dict[str, str], noise: list[str], picks: list[int], cuts: list[int]
) -> None:
    shown = [form for value in values.values() for form in rendered(value)]
    parts = []
    for i, pick in enumerate(picks):
        parts += [noise[i % len(noise)].encode(), shown[pick % len(shown)]]
    data = b"".join(parts)
    whole = Scrubber(values).scrub(data)
    assert split_feed(Scrubber(values), data, [c % (len(data) + 1) for c in cuts]) == whole
    one_by_one = Scrubber(values)
    assert (
        b"".join(one_by_one.feed(data[i : i + 1]) for i in range(len(data))) + (one_by_one.close())
        == whole
    )
    assert_clean(whole, values)


def test_seeded_random_streams_many_values() -> None:
    """A heavier seeded run than hypothesis's: 40-char values, thousands of split points."""
    rng = random.Random(14)
    for _ in range(40):
        values = {
            f"S{i}": "".join(rng.choice(ALPHABET) for _ in range(rng.randint(8, 40)))
            for i in range(rng.randint(1, 4))
        }
        shown = [form for value in values.values() for form in rendered(value)]
        data = b"".join(
            rng.choice(shown) + rng.choice([b"", b" ", b"\n", b"abc", b"==", b"%2"])
            for _ in range(30)
        )
        cuts = [rng.randint(0, len(data)) for _ in range(rng.randint(0, 200))]
        whole = Scrubber(values).scrub(data)
        assert split_feed(Scrubber(values), data, cuts) == whole
        assert_clean(whole, values)


def test_replacement_names_the_secret() -> None:
    value = "sk-live-0123456789abcdef"
    out = Scrubber({"OPENAI_API_KEY": value}).scrub(f"key={value}\n".encode())
    assert out == b"key=OPENAI_API_KEY=<REDACTED>\n"


@pytest.mark.parametrize("text", [b"Password: ", b"> ", b"continue? [y/N] ", b"\x1b[0m$ "])
def test_text_that_cannot_begin_a_secret_passes_at_once(text: bytes) -> None:
    """A prompt is not held back waiting for more output (no timer, no newline needed)."""
    scrubber = Scrubber({"TOKEN": "Zq9Zq9Zq9Zq9Zq9"})
    assert scrubber.feed(text) == text


def test_only_a_possible_beginning_is_held_and_then_released() -> None:
    value = "hunter2-hunter2"
    scrubber = Scrubber({"PW": value})
    assert scrubber.feed(b"ok hunt") == b"ok "  # 'hunt' could begin the value
    assert scrubber.feed(b"ing\n") == b"hunting\n"  # it did not


def test_short_values_are_not_masked() -> None:
    assert not is_masked("abc1234")
    assert forms("abc1234") == []
    assert Scrubber({"PIN": "abc1234"}).scrub(b"pin abc1234") == b"pin abc1234"


def test_no_secrets_passes_everything() -> None:
    scrubber = Scrubber({})
    assert scrubber.feed(b"anything") == b"anything"
    assert scrubber.close() == b""
