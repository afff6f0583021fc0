"""PyYAML, imported without building a regular expression memfs never uses.

Importing ``yaml`` compiles ``yaml.reader.Reader.NON_PRINTABLE``, a character class spanning all
of Unicode: ~46 million instructions, ~10 ms of every memfs command (PyYAML pull requests #124
and #301, open since 2018). Only PyYAML's pure-Python reader uses it; memfs parses with libyaml
(``CSafeLoader``), which checks printable characters in C. So ``yaml`` is imported here with that
one pattern compiled on first use instead; any other pattern, and any later PyYAML whose pattern
differs, is compiled as usual. Every memfs module imports ``yaml`` from here.

``yaml`` here is a stand-in that imports PyYAML on first attribute use (~7 ms): a command that
finds every file in its parse cache (``memfs status`` on a clean agent) never parses YAML.
``except yaml.YAMLError`` costs nothing until something is raised.
"""

from __future__ import annotations

import re
import sys
from types import ModuleType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_NON_PRINTABLE = "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"


class _CompiledOnUse:
    """Stands in for a compiled pattern; compiles it (once, re caches it) when first used."""

    def __init__(self, pattern: str, flags: int) -> None:
        self._pattern = pattern
        self._flags = flags

    def __getattr__(self, name: str) -> Any:
        return getattr(re.compile(self._pattern, self._flags), name)


def _import_yaml() -> ModuleType:
    if "yaml" in sys.modules:
        return sys.modules["yaml"]
    compile_now = re.compile

    def compile_or_defer(pattern: Any, flags: Any = 0) -> Any:
        if pattern == _NON_PRINTABLE and flags == 0:
            return _CompiledOnUse(pattern, flags)
        return compile_now(pattern, flags)

    re.compile = compile_or_defer  # type: ignore[assignment]
    try:
        import yaml
    finally:
        re.compile = compile_now
    return yaml


class _YamlOnUse(ModuleType):
    """``yaml``, imported when one of its attributes is first used."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_import_yaml(), name)


yaml: Any = _YamlOnUse("yaml")
