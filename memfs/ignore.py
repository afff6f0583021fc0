"""Which files memfs leaves out: editor litter, secrets, .gitignore files, .memfsignore and
the user's lines of ``.git/info/exclude``.

All rules use gitignore syntax (pathspec), later rules win, so a ``!.env`` line in .memfsignore
opts a file back in. As in git, a ``.gitignore`` in a folder speaks for the paths below it and
wins over the files above it (the walk loads each one as it lists its folder). memfs's own
rules and .memfsignore are mirrored into ``.git/info/exclude`` so that the real ``git status``
agrees with memfs about what is not versioned. A line that is not a valid
pattern (``\\`` alone) is left out and reported as a problem, never an error.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
from pathlib import Path

from memfs.schema import Problem
from memfs.util import TEMP_PREFIX, atomic_write

TYPE_CHECKING = False
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

    def __init__(self, root: Path, control_dir: Path | None = None) -> None:
        self.root = root
        self.problems: list[Problem] = []
        if control_dir is None:
            from memfs.damage import control_dir_of

            control_dir = control_dir_of(root)
        # the user's own lines of .git/info/exclude: those before memfs's block lose to it (as
        # in git, where later lines win), those after it win
        before, after = _user_exclude_lines(control_dir / "info" / "exclude")
        self.excludes = before + after
        self.user_lines = self._valid_lines(".gitignore") + self._valid_lines(MEMFSIGNORE)
        self._own = [*LITTER_PATTERNS, *SECRET_PATTERNS]
        self._spec: pathspec.GitIgnoreSpec | None = None
        if self.user_lines or self.excludes:
            import pathspec

            lines = [*before, *self._own, *after, *self.user_lines]
            self._spec = pathspec.GitIgnoreSpec.from_lines(lines)
        first = len(before) + len(LITTER_PATTERNS)
        self._secret_rules = range(first, first + len(SECRET_PATTERNS))
        self._litter, self._secret, self._either = _own_regexes()
        # a nested folder's .gitignore, by folder (None: the folder has none), as git reads it
        self._nested: dict[str, pathspec.GitIgnoreSpec | None] = {}

    @property
    def custom(self) -> bool:
        """Whether rules beyond the root's files apply (a nested .gitignore, the user's
        exclude lines): a record that only stats the tree cannot see them change."""
        return bool(self.excludes) or any(spec is not None for spec in self._nested.values())

    def load_nested(self, folder: str) -> bool:
        """Read ``folder``'s .gitignore (a walk calls this for each folder it lists holding
        one, before classifying its entries); whether it held any rule."""
        if folder not in self._nested:
            lines = self._valid_lines(folder + "/.gitignore", nested=True)
            spec = None
            if lines:
                import pathspec

                spec = pathspec.GitIgnoreSpec.from_lines(lines)
            self._nested[folder] = spec
        return self._nested[folder] is not None

    def load_ancestors(self, path: str) -> None:
        """Read the .gitignore of each folder above ``path`` not read yet (for a check of a
        few paths with no walk to list their folders)."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in self._nested:
                self.load_nested(folder)

    def _nested_verdict(self, path: str, is_dir: bool) -> bool | None:
        """What the deepest nested .gitignore with a rule matching ``path`` says; None if
        none does (the root's rules decide)."""
        parts = path.split("/")
        for depth in range(len(parts) - 1, 0, -1):
            spec = self._nested.get("/".join(parts[:depth]))
            if spec is None:
                continue
            rel = "/".join(parts[depth:])
            verdict = _dir_verdict(spec, rel) if is_dir else spec.check_file(rel).include
            if verdict is not None:
                return verdict
        return None

    def is_ignored(self, path: str, is_dir: bool = False) -> bool:
        """Whether ``path`` (posix, relative to the root) is left out."""
        if self._nested:
            verdict = self._nested_verdict(path, is_dir)
            if verdict is not None:
                return verdict
        if self._spec is None:
            litter, secret = self._litter, self._secret
            return any(litter.match(part) or secret.match(part) for part in path.split("/"))
        if is_dir:
            return bool(_dir_verdict(self._spec, path))
        return self._spec.match_file(path)

    @property
    def by_name_only(self) -> bool:
        """Whether a path is ignored exactly when one of its parts is (memfs's own rules, no
        .gitignore, .memfsignore or exclude lines): a walk that kept a folder checks only
        names inside it."""
        return self._spec is None and not any(self._nested.values())

    def by_name_only_in(self, folder: str) -> bool:
        """``by_name_only`` for the paths in ``folder`` ("" the root): no nested .gitignore
        above it has rules, so a folder beside one with a .gitignore keeps the quick way."""
        if self._spec is not None:
            return False
        nested = self._nested
        if not nested:
            return True
        parts = folder.split("/")
        return not any(nested.get("/".join(parts[:depth])) for depth in range(1, len(parts) + 1))

    def name_is_ignored(self, name: str) -> bool:
        """``is_ignored`` of one path part alone; the answer for a path under kept folders
        when ``by_name_only``."""
        return self._either.match(name) is not None

    def is_secret(self, path: str) -> bool:
        """Whether ``path`` is left out because it looks like a secret."""
        if self._nested and self._nested_verdict(path, False) is not None:
            return False  # a user's rule decides
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

    def _valid_lines(self, name: str, report: bool = True, nested: bool = False) -> list[str]:
        """The lines of the ignore file ``name`` that are valid patterns; the rest reported.
        A ``nested`` one that is a symlink is not read (as git, and it may lead outside)."""
        valid = []
        lines = _read_nested_lines(self.root / name) if nested else _read_lines(self.root / name)
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


def _dir_verdict(spec: pathspec.GitIgnoreSpec, path: str) -> bool | None:
    """Whether the last pattern of ``spec`` matching the folder ``path`` ignores it (None: no
    pattern matches). As git decides for a folder; pathspec's own order for files ranks a
    match through a ``dir/`` pattern below any other, so ``*`` then ``!*/`` would ignore it."""
    for pattern in reversed(spec.patterns):
        if pattern.include is not None and pattern.match_file(path + "/") is not None:
            return pattern.include
    return None


def _user_exclude_lines(path: Path) -> tuple[list[str], list[str]]:
    """The valid pattern lines of ``.git/info/exclude`` before and after memfs's block."""
    text = "\n".join(_read_lines(path))
    if _BLOCK_START not in text:
        return _patterns(text.splitlines()), []
    before, _, rest = text.partition(_BLOCK_START)
    _, _, after = rest.partition(_BLOCK_END)
    return _patterns(before.splitlines()), _patterns(after.splitlines())


def _patterns(lines: list[str]) -> list[str]:
    """The lines that are patterns (not blank, not comments) and valid ones."""
    lines = [line for line in lines if line.strip() and not line.startswith("#")]
    if not lines:
        return []
    import pathspec

    valid = []
    for line in lines:
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except (ValueError, TypeError):
            continue
        valid.append(line)
    return valid


def _read_nested_lines(path: Path) -> list[str]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return []  # absent, a symlink, unreadable
    with os.fdopen(fd, "rb") as file:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return []
            data = file.read()
        except OSError:
            return []
    return data.decode("utf-8", errors="replace").splitlines()


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return []
