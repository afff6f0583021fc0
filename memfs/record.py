"""Value classes without ``dataclasses``: equality, repr and hashing over a tuple of fields.

``import dataclasses`` loads inspect, ast, dis and tokenize (~7 ms) and each ``@dataclass``
compiles its methods with exec (~0.3-0.7 ms a class): paid at import by every command, on
the paths a harness runs each turn (``status``, ``context``, ``ls``, ``commit``). A class
here lists its fields in ``_fields`` and ``__slots__`` and writes its own ``__init__``;
these bases give it what ``@dataclass`` (``frozen=True``) would: ``==`` between instances
of the same class, a ``Name(field=value, ...)`` repr, and for frozen ones a hash, no
assignment, and pickling/copying through ``__init__``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self


class Record:
    """A mutable value: equal to another of its class with equal fields (unhashable)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self._fields])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({shown})"

    def _asdict(self) -> dict[str, Any]:
        """The fields by name (as ``dataclasses.asdict``, without copying the values)."""
        return dict(zip(self._fields, self._values(), strict=True))

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, self._values())


class FrozenRecord(Record):
    """An immutable value: set once by ``__init__`` (through ``_set``), hashable."""

    __slots__ = ()

    def _set(self, *values: Any) -> None:
        """Give the fields, in ``_fields``'s order, their values (from ``__init__`` only)."""
        for name, value in zip(self._fields, values, strict=True):
            object.__setattr__(self, name, value)

    def _replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (as ``dataclasses.replace``)."""
        return type(self)(**{**self._asdict(), **changes})

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")
