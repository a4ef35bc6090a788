"""`dataclass`: `dataclasses.dataclass`, with the methods made when the first instance is.

`dataclasses.dataclass` writes the source of ``__init__``, ``__repr__`` and
``__eq__`` (for a frozen class also ``__setattr__``, ``__delattr__`` and
``__hash__``) and compiles each one when the class statement runs, that is at
import: about half a millisecond a class on a CI machine. continuity has some
thirty of them, which made them half of what ``import continuity`` cost; a
``fab --list`` makes none of their instances, a task a few.

This decorator leaves the class as written and gives it an ``__init__``
that, the first time the class is called, hands it to `dataclasses.dataclass`
and then calls the ``__init__`` that one wrote. From then on the class is what
`dataclasses.dataclass` would have made at import: the same object, the same
methods. Before its first instance, `dataclasses.fields` and
`dataclasses.is_dataclass` do not know the class yet, and an instance made
without calling it (``cls.__new__(cls)``) would not get the methods; nothing
in continuity does either. `make_all` makes every pending class at once (the
tests call it, so a bad definition fails there). mypy sees
`dataclasses.dataclass` itself.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

__all__ = ["dataclass", "make_all"]

_lock = threading.RLock()
_pending: dict[type, dict[str, Any]] = {}  # class -> the options it was decorated with


def _dataclass(cls: type | None = None, /, **options: Any) -> Any:
    """`dataclasses.dataclass` with the same arguments, applied on the first instance."""
    if cls is None:
        return lambda klass: _defer(klass, options)
    return _defer(cls, options)


if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
else:
    dataclass = _dataclass


def make_all() -> None:
    """Make every class still pending now, as import would have: a bad definition raises here."""
    with _lock:
        for cls in list(_pending):
            _make(cls)


def _defer(cls: type, options: dict[str, Any]) -> type:
    if "__init__" in vars(cls) or options.get("slots"):
        # A class with its own __init__, or one dataclass replaces by a new class: now.
        made: type = dataclasses.dataclass(cls, **options)
        return made

    def first_init(self: Any, *args: Any, **kwargs: Any) -> None:
        with _lock:
            for klass in reversed(type(self).__mro__):
                _make(klass)
        cls.__init__(self, *args, **kwargs)  # type: ignore[misc]  # the one dataclass wrote

    with _lock:
        _pending[cls] = options
        cls.__init__ = first_init  # type: ignore[misc]
    return cls


def _make(cls: type) -> None:
    """Apply `dataclasses.dataclass` to ``cls`` (its pending bases first) if it is pending."""
    options = _pending.pop(cls, None)
    if options is None:
        return
    for base in reversed(cls.__mro__[1:]):
        _make(base)
    del cls.__init__  # type: ignore[misc]  # or dataclass would keep it as the class's own
    made: type = dataclasses.dataclass(cls, **options)
    assert made is cls, cls
