"""Client-side encryption of an agent's objects in a store (issue 14, docs/design-encryption.md).

The package map, one concept per module:

- ``aead``: ChaCha20-Poly1305 (RFC 8439) from libsodium through PyNaCl's compiled module.
- ``envelope``: the byte layout of every sealed object (``MFE1`` header, ChaCha20-Poly1305
  under a per-object HKDF subkey, associated data binding repo id, role and logical name),
  ``seal``/``peek``/``open_sealed``, the ``Keys`` protocol and ``StaticKeys`` for tests.
- ``identity``: this machine's age X25519 identity file (0600 in a 0700 folder).
- ``keyfile``: the format of ``keys.json`` in the store (one key per epoch wrapped for each
  slot: an age X25519 recipient per machine, or a passphrase-protected recovery identity; the
  sealed history of older keys and the epoch link), its limits, and the checks that accept
  a keyring only if it follows from the keys this machine holds.
- ``keyring``: the operations: open, create, add a slot, rotate, remove a slot (rotating),
  unlock a passphrase slot; each a compare-and-swap of ``keys.json``, retried on a lost race.
- ``keycache``: this machine's copy of the epoch keys it opened and the ``seen`` state the
  rollback guard compares against, flock'd, 0600; and the rules every private file of the
  machine is kept under (the identity's too), so that a push or pull with its keys cached
  loads neither ``identity``, ``keyfile`` nor ``keyring``.

Nothing here is imported unless a remote is encrypted or an agent has secrets, and the
modules import libsodium (PyNaCl) and ``pyrage`` only when they seal, open or wrap, so this
package map costs nothing (tests/test_cli_startup.py, tests/test_imports.py).
"""
