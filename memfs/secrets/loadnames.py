"""Environment names that change how programs load or run (review11 F11).

``memfs run`` puts an agent's secrets into the command's environment on every machine the
agent syncs to. A name such as ``PATH``, ``LD_PRELOAD`` or ``BASH_ENV`` there does not hand a
program a credential: it picks the programs, libraries or start-up scripts that run. Such
names are never taken from an Agent File (its tool environment belongs to Letta's sandbox,
and .af files are shared publicly); ``memfs secret set`` of one is a person's explicit
choice, taken with a warning.
"""

from __future__ import annotations

EXACT = frozenset(
    {
        "PATH", "HOME", "SHELL", "IFS", "ENV", "BASH_ENV", "CDPATH", "GLOBIGNORE",
        "PROMPT_COMMAND", "PS4", "SHELLOPTS", "BASHOPTS", "ZDOTDIR", "TMPDIR",
        "NODE_OPTIONS", "NODE_PATH", "RUBYOPT", "RUBYLIB", "PERLLIB", "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH", "GCONV_PATH", "LOCPATH",
        "HOSTALIASES", "RESOLV_HOST_CONF", "EDITOR", "VISUAL", "PAGER", "BROWSER",
        "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CONFIG_DIRS", "XDG_DATA_DIRS",
        "NPM_CONFIG_PREFIX", "NPM_CONFIG_USERCONFIG", "GEM_HOME", "GEM_PATH",
    }
)  # fmt: skip
PREFIXES = ("LD_", "DYLD_", "PYTHON", "PERL5", "GIT_", "SSH_", "BASH_FUNC_", "MALLOC_")


def changes_loading(name: str) -> bool:
    """Whether environment variable ``name`` changes which programs, libraries or scripts
    run (``PATH``, ``LD_*``, ``BASH_ENV``, ``PYTHON*``...), rather than passing a value."""
    return name in EXACT or name.startswith(PREFIXES)
