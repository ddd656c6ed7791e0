"""The generated renderers write exactly what the model's emitters write, errors included."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import botocore.session
import pytest
from botocore.model import ServiceModel

from broker.sts.model import StsModel
from broker.sts.render import members_emitter
from tests.unit.test_sts_model import _sample_output

SERVICE: ServiceModel = botocore.session.get_session().get_service_model("sts")
MODEL = StsModel.load()
ACTIONS = sorted(a for a in MODEL.actions() if SERVICE.operation_model(a).output_shape)

Render = Callable[[Mapping[str, Any], str, list[str]], None]


def _both(action: str) -> tuple[Render, Render]:
    shape = MODEL._ops[action].output
    assert shape is not None
    return MODEL._renderers[action], members_emitter(shape, "    ")


def _outcome(render: Render, action: str, result: Any) -> tuple[str, str]:
    out: list[str] = []
    try:
        render(result, action, out)
    except (TypeError, ValueError) as error:
        return type(error).__name__, str(error)
    return "ok", "".join(out)


def _variants(action: str) -> list[Any]:
    """The full sample, each member left out in turn, emptied structures, wrong types."""
    full = _sample_output(SERVICE.operation_model(action).output_shape, action)
    variants: list[Any] = [full, {}, {"NotAMember": "x"}]
    for name, value in full.items():
        variants.append({k: v for k, v in full.items() if k != name})
        variants.append({**full, name: None})
        for wrong in ("text", 7, True, 1.5, ["a"], {"x": 1}, b"raw"):
            variants.append({**full, name: wrong})
        if isinstance(value, dict):
            variants.append({**full, name: {}})
            variants.append({**full, name: {**value, "Unknown": "x"}})
            for inner, inner_value in value.items():
                variants.append({**full, name: {inner: inner_value}})
                for wrong in ("a<b>&\r\x00", 7, False, 2.5, None, ["a"], {"y": 2}):
                    variants.append({**full, name: {**value, inner: wrong}})
    return variants


@pytest.mark.parametrize("action", ACTIONS)
def test_generated_renderer_matches_the_model_emitter(action: str) -> None:
    generated, reference = _both(action)
    variants = _variants(action)
    assert len(variants) > 10
    for result in variants:
        assert _outcome(generated, action, result) == _outcome(reference, action, result), result


def test_generated_renderer_is_what_the_model_uses() -> None:
    rendered = MODEL.render_result(
        "GetCallerIdentity", {"UserId": "AIDA", "Account": "1", "Arn": "a&b"}, "r"
    )
    assert b"<Arn>a&amp;b</Arn>" in rendered
    assert MODEL._renderers["GetCallerIdentity"].__qualname__ == "render_GetCallerIdentity"
