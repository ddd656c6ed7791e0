"""botocore's ``cognito-identity`` model: JSON 1.1 input validated, answers rendered.

The identity pools API is AWS's JSON protocol, not Query, but the model is the same kind of
document as STS's, so it is compiled by the same :class:`~broker.sts.shapes.ShapeCompiler`
and checked with the same constraint rules (:func:`broker.sts.model.constraint_violations`),
in AWS's Coral wording: ``ValidationException: 1 validation error detected: Value 'x' at
'identityPoolId' failed to satisfy constraint: ...``. Only the JSON-specific parts are here:
a body that is not JSON, or a member of the wrong JSON type, is a
``SerializationException``; timestamps go out as epoch seconds (a JSON number).
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import botocore

from broker.errors import StsError
from broker.sts.model import constraint_violations, coral_message, violation
from broker.sts.shapes import INT_RANGES, Shape, ShapeCompiler

API_VERSION: Final = "2014-06-30"
TARGET_PREFIX: Final = "AWSCognitoIdentityService"
JSON_CONTENT_TYPE: Final = "application/x-amz-json-1.1"
_MODEL_PATH: Final = (
    Path(botocore.__file__).parent / "data" / "cognito-identity" / API_VERSION / "service-2.json.gz"
)
_MAX_DEPTH: Final = 8


def serialization_error(message: str) -> StsError:
    return StsError("SerializationException", message, 400)


@dataclass(frozen=True)
class Operation:
    name: str
    input: Shape
    output: Shape
    signed: bool
    """Needs SigV4 (the model's ``authtype`` is not ``none``)."""


class CognitoModel:
    """The compiled model: every operation's input and output shapes."""

    def __init__(self, service: Mapping[str, Any]) -> None:
        meta = service["metadata"]
        if meta.get("protocol") != "json" or meta.get("apiVersion") != API_VERSION:
            raise ValueError("the cognito-identity model is not the 2014-06-30 JSON protocol")
        if meta.get("targetPrefix") != TARGET_PREFIX:
            raise ValueError("the cognito-identity model's target prefix changed")
        compiler = ShapeCompiler(service["shapes"])
        self._ops: dict[str, Operation] = {}
        for name, op in service["operations"].items():
            if "input" not in op or "output" not in op:
                continue
            self._ops[name] = Operation(
                name=name,
                input=compiler.shape(op["input"]["shape"]),
                output=compiler.shape(op["output"]["shape"]),
                signed=op.get("authtype") != "none",
            )

    @classmethod
    @functools.cache
    def load(cls) -> CognitoModel:
        with gzip.open(_MODEL_PATH, "rt", encoding="utf-8") as fh:
            return cls(json.load(fh))

    def operation(self, name: str) -> Operation | None:
        return self._ops.get(name)

    def parse_input(self, operation: Operation, body: object) -> dict[str, Any]:
        """The validated input members; ``ValidationException`` listing every violation."""
        if not isinstance(body, dict):
            raise serialization_error("The request body must be a JSON object.")
        decoder = _Decoder()
        result = decoder.structure(operation.input, body, "", 0)
        if decoder.violations:
            raise StsError("ValidationException", coral_message(decoder.violations), 400)
        return result

    def render(self, operation: Operation, result: Mapping[str, Any]) -> bytes:
        """The answer for ``operation``: members in model order, None left out."""
        return json.dumps(_render(operation.output, result), separators=(",", ":")).encode()


class _Decoder:
    """Decodes one JSON body against an input shape, collecting constraint violations."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def structure(
        self, shape: Shape, value: Mapping[str, Any], prefix: str, depth: int
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for member in shape.members:
            path = f"{prefix}.{member.path}" if prefix else member.path
            raw = value.get(member.name)
            if raw is None:
                if member.name in shape.required:
                    self.violations.append(
                        violation(
                            None, path, member.shape, member.sensitive, "Member must not be null"
                        )
                    )
                continue
            out[member.name] = self.value(member.shape, raw, path, member.sensitive, depth)
        return out

    def value(self, shape: Shape, raw: object, path: str, sensitive: bool, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise serialization_error("The request is nested too deeply.")
        kind = shape.type
        decoded: Any
        if kind == "structure":
            if not isinstance(raw, dict):
                raise _wrong_type(path, "an object")
            return self.structure(shape, raw, path, depth + 1)
        if kind == "list":
            if not isinstance(raw, list):
                raise _wrong_type(path, "a list")
            assert shape.item is not None
            decoded = [
                self.value(shape.item, item, f"{path}.{i + 1}.member", sensitive, depth + 1)
                for i, item in enumerate(raw)
            ]
        elif kind == "map":
            if not isinstance(raw, dict):
                raise _wrong_type(path, "an object")
            assert shape.item is not None and shape.key is not None
            decoded = {}
            for key, item in raw.items():
                self.violations.extend(constraint_violations(shape.key, key, f"{path}.key", False))
                decoded[key] = self.value(shape.item, item, f"{path}.{key}", sensitive, depth + 1)
        else:
            decoded = _scalar(kind, raw, path)
        self.violations.extend(constraint_violations(shape, decoded, path, sensitive))
        return decoded


def _scalar(kind: str, raw: object, path: str) -> Any:
    if kind == "string":
        if not isinstance(raw, str):
            raise _wrong_type(path, "a string")
        return raw
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            raise _wrong_type(path, "an integer")
        return raw
    if kind == "boolean":
        if not isinstance(raw, bool):
            raise _wrong_type(path, "true or false")
        return raw
    # timestamp: epoch seconds in the JSON protocol
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _wrong_type(path, "a number of seconds since 1970")
    return float(raw)


def _wrong_type(path: str, wanted: str) -> StsError:
    return serialization_error(f"The member at '{path}' must be {wanted}.")


def _render(shape: Shape, value: object) -> Any:
    if shape.type == "structure":
        assert isinstance(value, Mapping)
        unknown = set(value) - shape.member_names
        if unknown:
            raise ValueError(f"{shape.name} has no member {sorted(unknown)[0]!r}")
        return {
            m.name: _render(m.shape, value[m.name])
            for m in shape.members
            if value.get(m.name) is not None
        }
    if shape.type == "list":
        assert isinstance(value, list | tuple) and shape.item is not None
        return [_render(shape.item, item) for item in value]
    if shape.type == "map":
        assert isinstance(value, Mapping) and shape.item is not None
        return {key: _render(shape.item, item) for key, item in value.items()}
    if shape.type == "timestamp":
        assert isinstance(value, int | float)
        return int(value) if float(value).is_integer() else value
    return value
