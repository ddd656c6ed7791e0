"""Frozen dataclasses that are cheap to build, for the values every request creates.

A ``@dataclass(frozen=True)`` instance is immutable because its class's ``__setattr__``
raises; so its generated ``__init__`` must store each field through ``object.__setattr__``,
several times the cost of a plain store. A web identity request builds a dozen such values
(~70 fields: the request, the verified identity, the session claims, the policy
evaluation), so that cost is paid on every request (bench/README.md has the figures).

:func:`fast_init` keeps everything ``dataclass`` made (``__eq__``, ``__hash__``,
``__repr__``, the raising ``__setattr__``/``__delattr__``, ``fields()``, ``replace()``) and
replaces only ``__init__`` by one with the same signature that writes the instance
``__dict__`` directly, which a frozen class's ``__setattr__`` never sees. Like
``dataclasses`` itself, it compiles that ``__init__`` from source once, at import, from the
field names alone. It accepts only the shapes it reproduces exactly (positional-or-keyword
fields with plain defaults or default factories; no ``__post_init__``, ``InitVar``,
``ClassVar``, ``init=False`` or ``kw_only`` field, no ``__slots__``), refuses anything
else, and checks that the signature it made is the one ``dataclass`` made.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar, cast

T = TypeVar("T")


class _Factory:
    """The default of a field with a ``default_factory``: "not passed, call the factory"."""

    def __repr__(self) -> str:
        return "<factory>"  # as dataclass's own sentinel shows in signatures


_FACTORY = _Factory()


def fast_init(cls: type[T]) -> type[T]:
    """Give frozen dataclass ``cls`` an ``__init__`` that stores fields without ``__setattr__``."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or not params.init:
        raise TypeError(f"{cls.__qualname__}: fast_init needs @dataclass(frozen=True) under it")
    fields = dataclasses.fields(cast(Any, cls))
    declared = vars(cls)["__dataclass_fields__"]
    if (
        len(declared) != len(fields)  # an InitVar or ClassVar
        or any(not f.init or f.kw_only for f in fields)
        or hasattr(cls, "__post_init__")
        or "__slots__" in vars(cls)
    ):
        raise TypeError(
            f"{cls.__qualname__}: fast_init takes plain fields only (no InitVar, ClassVar, "
            "init=False, kw_only, __post_init__ or slots)"
        )
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    signature: list[str] = []
    body: list[str] = []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            signature.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            signature.append(f"{f.name}=_FACTORY")
            body.append(f"    if {f.name} is _FACTORY: {f.name} = _factory_{f.name}()")
        else:
            signature.append(f.name)
    body.append("    values = self.__dict__")
    body += [f"    values[{f.name!r}] = {f.name}" for f in fields]
    source = f"def __init__(self, {', '.join(signature)}):\n" + "\n".join(body)
    exec(source, namespace)  # noqa: S102 - built from field names only, as dataclasses does
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    # Names, order, kinds, defaults and annotations, as help() shows them.
    if str(inspect.signature(init)) != str(inspect.signature(cls.__init__)):
        raise TypeError(f"{cls.__qualname__}: fast_init would change the constructor")
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
