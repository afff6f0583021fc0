"""Which files memfs leaves out: editor litter, secrets, .gitignore and .memfsignore.

All rules use gitignore syntax (pathspec), later rules win, so a ``!.env`` line in .memfsignore
opts a file back in. The same rules are mirrored into ``.git/info/exclude`` so that the real
``git status`` agrees with memfs about what is not versioned. A line that is not a valid
pattern (``\\`` alone) is left out and reported as a problem, never an error.
"""

from __future__ import annotations

from pathlib import Path

import pathspec

from memfs.schema import Problem
from memfs.util import TEMP_PREFIX, atomic_write

MEMFSIGNORE = ".memfsignore"
LITTER_PATTERNS = (
    "*.swp", "*.swo", "*.swx", "*~", ".#*", "#*#", "4913", "*.tmp", ".DS_Store",
    f"{TEMP_PREFIX}*",
)  # fmt: skip
SECRET_PATTERNS = (
    ".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
)  # fmt: skip
_BLOCK_START = "# >>> memfs: managed block, regenerated from .memfsignore; do not edit"
_BLOCK_END = "# <<< memfs"


class IgnoreRules:
    """The ignore rules of one agent directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[Problem] = []
        self.user_lines = self._valid_lines(".gitignore") + self._valid_lines(MEMFSIGNORE)
        self._own = [*LITTER_PATTERNS, *SECRET_PATTERNS]
        self._spec = pathspec.GitIgnoreSpec.from_lines([*self._own, *self.user_lines])
        self._first_user_rule = len(self._own)
        self._secret_rules = range(len(LITTER_PATTERNS), len(self._own))

    def is_ignored(self, path: str, is_dir: bool = False) -> bool:
        """Whether ``path`` (posix, relative to the root) is left out."""
        return self._spec.match_file(path + "/" if is_dir else path)

    def is_secret(self, path: str) -> bool:
        """Whether ``path`` is left out because it looks like a secret."""
        result = self._spec.check_file(path)
        return bool(result.include) and result.index in self._secret_rules

    def sync_git_exclude(self, control_dir: Path) -> None:
        """Mirror memfs's own rules and .memfsignore into ``.git/info/exclude``."""
        exclude = control_dir / "info" / "exclude"
        try:
            current = exclude.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            current = ""
        block = "\n".join(
            [_BLOCK_START, *self._own, *self._valid_lines(MEMFSIGNORE, report=False), _BLOCK_END]
        )
        before, _, rest = current.partition(_BLOCK_START)
        _, _, after = rest.partition(_BLOCK_END + "\n") if rest else ("", "", "")
        wanted = before.rstrip("\n") + ("\n" if before.strip() else "") + block + "\n" + after
        if wanted != current:
            exclude.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(exclude, wanted.encode())

    def _valid_lines(self, name: str, report: bool = True) -> list[str]:
        """The lines of the ignore file ``name`` that are valid patterns; the rest reported."""
        valid = []
        for number, line in enumerate(_read_lines(self.root / name), start=1):
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
            except (ValueError, TypeError) as error:
                if report:
                    why = f"not a valid ignore pattern, left out ({error})"
                    self.problems.append(Problem(name, number, why))
                continue
            valid.append(line)
        return valid


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return []
