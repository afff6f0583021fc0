"""An agent's secrets (docs/design-encryption.md §6): environment variables for ``memfs run``,
stored sealed in the manifest of its object-store remote, never in git, the work tree or logs.

``forms`` (what a value looks like in output), ``scrub`` (masking a stream), ``store`` (the
sealed blob, the local cache, pending changes), ``run`` (the child process), ``guard`` (the
commit guard), ``hooks`` (the cheap calls sync, the watcher and commits make). Only ``hooks``
and ``forms`` are light; the rest load ``cryptography`` and are imported when an agent has
secrets.
"""
