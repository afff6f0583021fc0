"""Which files memfs leaves out: editor litter, secrets, .gitignore and .memfsignore.

All rules use gitignore syntax (pathspec), later rules win, so a ``!.env`` line in .memfsignore
opts a file back in. The same rules are mirrored into ``.git/info/exclude`` so that the real
``git status`` agrees with memfs about what is not versioned. A line that is not a valid
pattern (``\\`` alone) is left out and reported as a problem, never an error.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from memfs.schema import Problem
from memfs.util import TEMP_PREFIX, atomic_write

if TYPE_CHECKING:
    import pathspec

MEMFSIGNORE = ".memfsignore"
LITTER_PATTERNS = (
    "*.swp", "*.swo", "*.swx", "*~", ".#*", r"\#*#", "4913", "*.tmp", ".DS_Store",
    f"{TEMP_PREFIX}*",
)  # fmt: skip
SECRET_PATTERNS = (
    ".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
)  # fmt: skip
# With no .gitignore or .memfsignore (the usual agent), memfs's own rules alone apply: each is a
# name pattern without '/', which in gitignore syntax ignores any path with a component of that
# name, so a regex per group matches them without importing pathspec (~10 ms a command).
# Emacs's auto-save files (#name#) are written '\#*#': a line starting with '#' is a comment in
# gitignore syntax, so the '#' is escaped there and unescaped for fnmatch.
# (One difference: pathspec's regexes let no folder name hold a newline, so a secret under such a
# folder escapes them; these rules leave it out.)


def _component_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(fnmatch.translate(p.removeprefix("\\")) for p in patterns))


@functools.cache
def _own_regexes() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """memfs's own rules: litter, secrets, and either; compiled when rules are first made (a
    command answered from the status record walks nothing and skips the ~1 ms)."""
    litter, secret = _component_regex(LITTER_PATTERNS), _component_regex(SECRET_PATTERNS)
    return litter, secret, re.compile(f"{litter.pattern}|{secret.pattern}")


_BLOCK_START = "# >>> memfs: managed block, regenerated from .memfsignore; do not edit"
_BLOCK_END = "# <<< memfs"


class IgnoreRules:
    """The ignore rules of one agent directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[Problem] = []
        self.user_lines = self._valid_lines(".gitignore") + self._valid_lines(MEMFSIGNORE)
        self._own = [*LITTER_PATTERNS, *SECRET_PATTERNS]
        self._spec: pathspec.GitIgnoreSpec | None = None
        if self.user_lines:
            import pathspec

            self._spec = pathspec.GitIgnoreSpec.from_lines([*self._own, *self.user_lines])
        self._first_user_rule = len(self._own)
        self._secret_rules = range(len(LITTER_PATTERNS), len(self._own))
        self._litter, self._secret, self._either = _own_regexes()

    def is_ignored(self, path: str, is_dir: bool = False) -> bool:
        """Whether ``path`` (posix, relative to the root) is left out."""
        if self._spec is None:
            litter, secret = self._litter, self._secret
            return any(litter.match(part) or secret.match(part) for part in path.split("/"))
        return self._spec.match_file(path + "/" if is_dir else path)

    @property
    def by_name_only(self) -> bool:
        """Whether a path is ignored exactly when one of its parts is (memfs's own rules, no
        .gitignore or .memfsignore): a walk that kept a folder checks only names inside it."""
        return self._spec is None

    def name_is_ignored(self, name: str) -> bool:
        """``is_ignored`` of one path part alone; the answer for a path under kept folders
        when ``by_name_only``."""
        return self._either.match(name) is not None

    def is_secret(self, path: str) -> bool:
        """Whether ``path`` is left out because it looks like a secret."""
        if self._spec is None:  # as gitignore decides: a rule naming the file itself wins
            *folders, name = path.split("/")
            litter, secret = self._litter, self._secret
            if secret.match(name) or litter.match(name):
                return secret.match(name) is not None
            return any(secret.match(folder) for folder in folders)
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
        lines = _read_lines(self.root / name)
        if lines:
            import pathspec
        for number, line in enumerate(lines, start=1):
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
