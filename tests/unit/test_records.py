"""fast_init: the same constructor and the same frozen value as @dataclass(frozen=True)."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import InitVar, dataclass, field
from typing import Any, ClassVar

import pytest

from broker.iam import Evaluation, MatchedStatement
from broker.identity import FederatedIdentity, SessionClaims, WebIdentity
from broker.records import fast_init
from broker.request import HttpRequestParts
from broker.sts.engine import RequestInfo
from broker.sts.protocol import QueryRequest


@dataclass(frozen=True)
class Plain:
    name: str
    size: int = 3
    tags: dict[str, str] = field(default_factory=dict)
    keys: tuple[str, ...] = ()


@fast_init
@dataclass(frozen=True)
class Fast:
    name: str
    size: int = 3
    tags: dict[str, str] = field(default_factory=dict)
    keys: tuple[str, ...] = ()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("a",), {}),
        (("a", 5), {"keys": ("k",)}),
        ((), {"name": "b", "tags": {"x": "y"}}),
        (("a", 1, {"t": "v"}, ("k",)), {}),
    ],
)
def test_same_values_as_the_dataclass_init(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    fast, plain = Fast(*args, **kwargs), Plain(*args, **kwargs)
    assert dataclasses.asdict(fast) == dataclasses.asdict(plain)
    assert fast == Fast(*args, **kwargs)


def test_same_signature_as_the_dataclass_init() -> None:
    assert str(inspect.signature(Fast)) == str(inspect.signature(Plain))
    assert Fast.__init__.__qualname__ == "Fast.__init__"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), (("a",), {"nope": 1}), (("a", 1, {}, (), 9), {}), (("a",), {"name": "b"})],
)
def test_the_same_argument_errors(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError) as fast_error:
        Fast(*args, **kwargs)
    with pytest.raises(TypeError) as plain_error:
        Plain(*args, **kwargs)
    # Only the function's qualified name differs ("Fast.__init__()" vs "Plain.__init__()").
    assert str(fast_error.value).split("()")[1] == str(plain_error.value).split("()")[1]


def test_still_frozen_and_factories_give_fresh_objects() -> None:
    first, second = Fast("a"), Fast("a")
    assert first.tags is not second.tags
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.name = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del first.size  # type: ignore[misc]
    assert dataclasses.replace(first, size=4) == Fast("a", 4)
    assert repr(first) == "Fast(name='a', size=3, tags={}, keys=())"
    # Hashing is dataclass's own (every field): equal records hash alike.
    assert hash(RequestInfo(1.0, "192.0.2.1", True)) == hash(RequestInfo(1.0, "192.0.2.1", True))


@pytest.mark.parametrize(
    "cls",
    [
        SessionClaims,
        WebIdentity,
        FederatedIdentity,
        HttpRequestParts,
        QueryRequest,
        RequestInfo,
        MatchedStatement,
        Evaluation,
    ],
)
def test_the_request_path_records_use_it(cls: type[Any]) -> None:
    # fast_init checked at import that the signature is the one dataclass made.
    assert cls.__init__.__code__.co_filename == "<string>"
    assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
    assert cls.__dataclass_params__.frozen


def _refused(cls: type[Any]) -> str:
    with pytest.raises(TypeError) as error:
        fast_init(cls)
    return str(error.value)


def test_refuses_what_it_cannot_reproduce() -> None:
    class NotData:
        pass

    @dataclass
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True)
    class WithInitVar:
        a: int
        b: InitVar[int]

    @dataclass(frozen=True)
    class WithClassVar:
        a: int
        b: ClassVar[int] = 1

    @dataclass(frozen=True)
    class NotInInit:
        a: int
        b: int = field(init=False, default=0)

    @dataclass(frozen=True, kw_only=True)
    class KeywordOnly:
        a: int

    @dataclass(frozen=True, slots=True)
    class Slotted:
        a: int

    assert "needs @dataclass(frozen=True)" in _refused(NotData)
    assert "needs @dataclass(frozen=True)" in _refused(Mutable)
    for cls in (PostInit, WithInitVar, WithClassVar, NotInInit, KeywordOnly, Slotted):
        assert "plain fields only" in _refused(cls), cls.__name__
