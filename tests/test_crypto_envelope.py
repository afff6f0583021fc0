"""The MFE1 envelope (memfs/crypto/envelope.py): the byte layout of docs/design-encryption.md §3,
round trips, and every way a sealed object can be changed, truncated, renamed or moved between
agents, roles and epochs being refused with TamperError before anything is used."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from memfs.crypto.envelope import (
    HEADER_LEN,
    OVERHEAD,
    Role,
    StaticKeys,
    hkdf_sha256,
    open_sealed,
    peek,
    role_for_name,
    seal,
    seal_with_nonce,
)
from memfs.errors import (
    DowngradeError,
    EncryptionError,
    ForkError,
    KeyringError,
    NoKeyError,
    RemoteError,
    RollbackError,
    TamperError,
)

from .harness import fresh_python

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
REPO = bytes.fromhex("5f0c1a2b3c4d5e6f708192a3b4c5d6e7")
OTHER_REPO = bytes(16)
PACK = "packs/pack-" + "ab" * 20 + ".pack"
NAMES = {
    Role.MANIFEST: "manifest.json",
    Role.PACK: PACK,
    Role.SECRETS: "manifest.json#secrets",
    Role.PRESENCE: "envs/e-4f0c2a9b1d7e3a55.json",
    Role.HISTORY: "keys.json#history",
    Role.LINK: "keys.json#link/3",
}


def test_the_layout_is_the_documented_one() -> None:
    """Recomputed from the design's own words with cryptography's primitives: header, HKDF
    subkey salted by the nonce, zero AEAD nonce, AD = header || repo_id || name."""
    nonce = bytes(range(100, 116))
    blob = seal_with_nonce(KEY, 7, Role.PACK, REPO, PACK, b"pack bytes", nonce)
    header = b"MFE1" + bytes([2]) + struct.pack(">I", 7) + nonce
    assert len(header) == HEADER_LEN == 25
    subkey = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=nonce, info=b"memfs-enc-1/pack"
    ).derive(KEY)
    body = ChaCha20Poly1305(subkey).encrypt(bytes(12), b"pack bytes", header + REPO + PACK.encode())
    assert blob == header + body
    assert len(blob) == len(b"pack bytes") + OVERHEAD == len(b"pack bytes") + 41
    # the test vector, pinned: a change of the format fails here
    assert blob.hex() == (
        "4d46453102000000076465666768696a6b6c6d6e6f70717273"  # MFE1, pack, epoch 7, nonce
        "b5b1c5210c291fa73f18c0c6f7466bd1eaca4531720fff9b7539"  # ciphertext || tag
    )


@pytest.mark.parametrize("role", list(Role))
def test_round_trip_for_every_role(role: Role) -> None:
    blob = seal(KEY, 3, role, REPO, NAMES[role], b"plain \x00 text")
    assert peek(blob) == (role, 3)
    assert open_sealed(KEY, REPO, NAMES[role], role, blob) == b"plain \x00 text"
    assert b"plain" not in blob


def test_two_seals_of_one_plaintext_differ() -> None:
    one = seal(KEY, 1, Role.MANIFEST, REPO, "manifest.json", b"same")
    two = seal(KEY, 1, Role.MANIFEST, REPO, "manifest.json", b"same")
    assert one != two and one[9:25] != two[9:25]  # fresh nonces


def test_empty_plaintext_round_trips() -> None:
    blob = seal(KEY, 1, Role.SECRETS, REPO, "manifest.json#secrets", b"")
    assert len(blob) == OVERHEAD
    assert open_sealed(KEY, REPO, "manifest.json#secrets", Role.SECRETS, blob) == b""


def test_every_byte_flipped_is_refused() -> None:
    """Each header field (magic, role, epoch, nonce) and every byte of ciphertext and tag."""
    blob = seal(KEY, 2, Role.PACK, REPO, PACK, b"0123456789abcdef")
    for position in range(len(blob)):
        for flip in (0x01, 0x80, 0xFF):
            changed = bytearray(blob)
            changed[position] ^= flip
            with pytest.raises(TamperError) as caught:
                open_sealed(KEY, REPO, PACK, Role.PACK, bytes(changed))
            assert caught.value.exit_code == 10
            assert PACK in str(caught.value)


def test_a_changed_epoch_in_the_header_is_refused_even_with_that_epochs_key() -> None:
    blob = seal(KEY, 2, Role.PACK, REPO, PACK, b"data")
    changed = blob[:5] + struct.pack(">I", 3) + blob[9:]
    assert peek(changed) == (Role.PACK, 3)
    for key in (KEY, OTHER_KEY):
        with pytest.raises(TamperError, match="failed authentication"):
            open_sealed(key, REPO, PACK, Role.PACK, changed)


def test_wrong_key_name_role_or_repo_is_refused() -> None:
    blob = seal(KEY, 1, Role.PACK, REPO, PACK, b"data")
    other_pack = "packs/pack-" + "cd" * 20 + ".pack"
    with pytest.raises(TamperError, match="failed authentication"):
        open_sealed(OTHER_KEY, REPO, PACK, Role.PACK, blob)  # another epoch's key
    with pytest.raises(TamperError, match=r"pack-cdcd.*failed authentication"):
        open_sealed(KEY, REPO, other_pack, Role.PACK, blob)  # copied under another name
    with pytest.raises(TamperError, match="failed authentication"):
        open_sealed(KEY, OTHER_REPO, PACK, Role.PACK, blob)  # another agent's
    with pytest.raises(TamperError, match="sealed as a pack, not a manifest"):
        open_sealed(KEY, REPO, "manifest.json", Role.MANIFEST, blob)  # another role


def test_a_role_byte_changed_to_match_the_name_still_fails() -> None:
    """Relabelling a pack as a manifest (header role 1) and opening it as manifest.json."""
    blob = seal(KEY, 1, Role.PACK, REPO, PACK, b"data")
    relabelled = blob[:4] + bytes([Role.MANIFEST]) + blob[5:]
    with pytest.raises(TamperError, match="failed authentication"):
        open_sealed(KEY, REPO, "manifest.json", Role.MANIFEST, relabelled)


def test_truncated_blobs_are_refused() -> None:
    blob = seal(KEY, 1, Role.MANIFEST, REPO, "manifest.json", b"a manifest")
    for length in range(len(blob)):
        with pytest.raises(TamperError):
            open_sealed(KEY, REPO, "manifest.json", Role.MANIFEST, blob[:length])
    with pytest.raises(TamperError):
        open_sealed(KEY, REPO, "manifest.json", Role.MANIFEST, blob + b"\0")


@pytest.mark.parametrize(
    ("blob", "why"),
    [
        (b"", "fewer than 41"),
        (b"MFE1" + bytes(36), "fewer than 41"),
        (b"MFE2\x01\x00\x00\x00\x01" + bytes(32), "bad magic"),
        (b"MFE1\x00\x00\x00\x00\x01" + bytes(32), "unknown role 0"),
        (b"MFE1\x07\x00\x00\x00\x01" + bytes(32), "unknown role 7"),
        (b"MFE1\xff\x00\x00\x00\x01" + bytes(32), "unknown role 255"),
        (b"MFE1\x01\x00\x00\x00\x00" + bytes(32), "epoch 0"),
    ],
)
def test_malformed_headers_are_refused_before_any_crypto(blob: bytes, why: str) -> None:
    with pytest.raises(TamperError, match=f"malformed: .*{why}"):
        peek(blob)
    with pytest.raises(TamperError, match=f"manifest.json is malformed: .*{why}"):
        open_sealed(KEY, REPO, "manifest.json", Role.MANIFEST, blob)


def test_peek_reads_the_highest_epoch() -> None:
    blob = seal(KEY, 2**32 - 1, Role.PRESENCE, REPO, NAMES[Role.PRESENCE], b"{}")
    assert peek(blob) == (Role.PRESENCE, 2**32 - 1)


def test_names_imply_their_roles() -> None:
    for role, name in NAMES.items():
        assert role_for_name(name) is role
    sha256_pack = "packs/pack-" + "0" * 64 + ".pack"
    assert role_for_name(sha256_pack) is Role.PACK
    for name in (
        "packs/pack-ab.pack",
        "packs/pack-" + "AB" * 20 + ".pack",
        "packs/pack-" + "ab" * 20 + ".idx",
        "manifest.json.enc",
        "envs/../x.json",
        "envs/a/b.json",
        "keys.json",
        "keys.json#link/0",
        "keys.json#link/x",
        "memfs.json",
    ):
        assert role_for_name(name) is None, name


def test_seal_refuses_a_callers_mistakes() -> None:
    with pytest.raises(ValueError, match="not of a manifest"):
        seal(KEY, 1, Role.MANIFEST, REPO, PACK, b"")
    with pytest.raises(ValueError, match="no sealed object's name"):
        seal(KEY, 1, Role.PACK, REPO, "packs/x", b"")
    with pytest.raises(ValueError, match="32 bytes"):
        seal(KEY[:16], 1, Role.PACK, REPO, PACK, b"")
    with pytest.raises(ValueError, match="outside"):
        seal(KEY, 0, Role.PACK, REPO, PACK, b"")
    with pytest.raises(ValueError, match="outside"):
        seal(KEY, 2**32, Role.PACK, REPO, PACK, b"")
    with pytest.raises(ValueError, match="repo id"):
        seal(KEY, 1, Role.PACK, REPO[:8], PACK, b"")


ROLES = st.sampled_from(list(Role))


@given(
    plaintext=st.binary(max_size=2048),
    key=st.binary(min_size=32, max_size=32),
    repo=st.binary(min_size=16, max_size=16),
    epoch=st.integers(min_value=1, max_value=2**32 - 1),
    role=ROLES,
    flip=st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
)
def test_property_open_inverts_seal_and_any_change_is_refused(
    plaintext: bytes, key: bytes, repo: bytes, epoch: int, role: Role, flip: tuple[int, int]
) -> None:
    name = NAMES[role]
    blob = seal(key, epoch, role, repo, name, plaintext)
    assert peek(blob) == (role, epoch)
    assert open_sealed(key, repo, name, role, blob) == plaintext
    position, mask = flip
    changed = bytearray(blob)
    changed[position % len(blob)] ^= mask
    with pytest.raises(TamperError):
        open_sealed(key, repo, name, role, bytes(changed))


def test_static_keys() -> None:
    keys = StaticKeys(epochs={1: KEY, 3: OTHER_KEY})
    assert keys.current() == (3, OTHER_KEY)
    assert keys.key(1) == KEY
    with pytest.raises(NoKeyError, match=r"\(epoch 2\)") as caught:
        keys.key(2)
    assert caught.value.exit_code == 10
    with pytest.raises(NoKeyError):
        StaticKeys(epochs={}).current()
    default = StaticKeys()
    epoch, key = default.current()
    assert (
        open_sealed(
            key,
            default.repo_id,
            PACK,
            Role.PACK,
            seal(key, epoch, Role.PACK, default.repo_id, PACK, b"x"),
        )
        == b"x"
    )


def test_encryption_errors_exit_10_and_are_remote_errors() -> None:
    errors = [
        NoKeyError("s3://b/a", "age1xyz"),
        TamperError("s3://b/a", PACK),
        RollbackError("s3://b/a", "manifest.json.enc is generation 3, older than 5"),
        ForkError("s3://b/a", "epoch 2"),
        DowngradeError("s3://b/a", "manifest.json.enc is gone"),
        KeyringError("s3://b/a", "no slot"),
    ]
    for error in errors:
        assert isinstance(error, EncryptionError) and isinstance(error, RemoteError)
        assert error.exit_code == 10
        assert str(error).startswith("s3://b/a")
    assert "memfs key add age1xyz --name test-host" in str(errors[0])
    assert str(errors[1]) == (
        f"s3://b/a: {PACK} failed authentication (changed, corrupted or swapped in the store); "
        "nothing was imported, the local repository is untouched"
    )
    moved = TamperError("", PACK).at("file:///cloud/a")
    assert type(moved) is TamperError and str(moved).startswith(f"file:///cloud/a: {PACK} failed")


def test_the_envelope_imports_no_cryptography_until_it_seals() -> None:
    probe = (
        "import sys\n"
        "import memfs.crypto, memfs.crypto.envelope as e\n"
        "try:\n"
        "    e.peek(b'MFE1' + bytes(40))\n"
        "except Exception:\n"
        "    pass\n"
        "print(sorted(m for m in ('cryptography', 'pyrage') if m in sys.modules))\n"
    )
    assert fresh_python(probe) == "[]"


def test_exit_code_10_is_documented_where_the_others_are() -> None:
    from pathlib import Path

    from memfs.cli import EXIT_CODES_HELP

    assert "  10 a key or integrity problem" in EXIT_CODES_HELP
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "| 10 | a key or integrity problem" in readme
    for line in EXIT_CODES_HELP.splitlines()[2:]:  # every code of --help is in the README's table
        assert f"| {line.split()[0]} |" in readme


# -- what the envelope uses in place of cryptography's HKDF and its aead package -------------

RFC5869 = [  # RFC 5869 appendix A.1 to A.3: (IKM, salt, info, L, OKM)
    (
        b"\x0b" * 22,
        bytes(range(13)),
        bytes(range(0xF0, 0xFA)),
        42,
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        bytes(range(80)),
        bytes(range(0x60, 0xB0)),
        bytes(range(0xB0, 0x100)),
        82,
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c6"
        "5e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        b"\x0b" * 22,
        b"",
        b"",
        42,
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "okm"), RFC5869)
def test_hkdf_gives_rfc_5869s_test_vectors(
    ikm: bytes, salt: bytes, info: bytes, length: int, okm: str
) -> None:
    assert hkdf_sha256(ikm, salt, info, length).hex() == okm


@given(
    ikm=st.binary(max_size=80),
    salt=st.binary(max_size=80),
    info=st.binary(max_size=80),
    length=st.integers(min_value=1, max_value=255 * 32),
)
def test_hkdf_gives_what_cryptographys_hkdf_gives(
    ikm: bytes, salt: bytes, info: bytes, length: int
) -> None:
    theirs = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)
    assert hkdf_sha256(ikm, salt, info, length) == theirs


def test_hkdf_refuses_lengths_rfc_5869_does_not_allow() -> None:
    for length in (0, 255 * 32 + 1):
        with pytest.raises(ValueError, match="HKDF-SHA256 gives"):
            hkdf_sha256(KEY, b"", b"", length)


def test_a_tag_failure_is_a_tamper_error_and_other_errors_pass_through() -> None:
    blob = seal(KEY, 1, Role.PACK, REPO, PACK, b"x")
    with pytest.raises(TamperError):
        open_sealed(OTHER_KEY, REPO, PACK, Role.PACK, blob)
    with pytest.raises(ValueError, match="32 bytes"):
        open_sealed(KEY[:31], REPO, PACK, Role.PACK, blob)


_ROLE_PATTERNS = {  # the regexes role_for_name's string checks replace
    Role.MANIFEST: r"manifest\.json",
    Role.PACK: r"packs/pack-[0-9a-f]{40}(?:[0-9a-f]{24})?\.pack",
    Role.SECRETS: r"manifest\.json#secrets",
    Role.PRESENCE: r"envs/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.json",
    Role.HISTORY: r"keys\.json#history",
    Role.LINK: r"keys\.json#link/[1-9][0-9]{0,9}",
}


def _by_patterns(name: str) -> Role | None:
    import re

    found = [role for role, pattern in _ROLE_PATTERNS.items() if re.fullmatch(pattern, name)]
    return found[0] if found else None


@given(
    prefix=st.sampled_from(
        ["", "manifest.json", "packs/pack-", "envs/", "keys.json#link/", "keys.json#", "x"]
    ),
    middle=st.one_of(
        st.text(alphabet="0123456789abcdefABCDEF_.-/#é ٣\n", max_size=110),
        st.sampled_from(["a" * 40, "0" * 64, "f" * 39, "1" * 100, "1" * 101, "0", "12", "٣"]),
    ),
    suffix=st.sampled_from(["", ".pack", ".json", "#secrets", "#history", ".idx", ".json.enc"]),
)
def test_names_imply_the_roles_the_regexes_did(prefix: str, middle: str, suffix: str) -> None:
    name = prefix + middle + suffix
    assert role_for_name(name) is _by_patterns(name), name
