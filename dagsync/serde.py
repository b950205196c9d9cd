"""Reading and writing the models as bytes (YAML for what people edit, JSON for the rest),
with limits that hold against hostile input."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

MAX_DOCUMENT_BYTES = 1024 * 1024

M = TypeVar("M", bound=BaseModel)


class DocumentError(ValueError):
    """A document could not be read as the model it should be. The message says why."""


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases: no billion-laughs expansion."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise DocumentError(f"YAML aliases are not allowed (line {mark.line + 1})")
        node = super().compose_node(parent, index)
        if getattr(node, "anchor", None):
            raise DocumentError(f"YAML anchors are not allowed (line {node.start_mark.line + 1})")
        return node


def _decode(data: bytes, what: str) -> str:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{what} is {len(data)} bytes; the limit is {MAX_DOCUMENT_BYTES}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{what} is not UTF-8: {exc}") from None


def _validate(model: type[M], raw: Any, what: str) -> M:
    if not isinstance(raw, dict):
        raise DocumentError(f"{what} must be a mapping, not {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise DocumentError(f"{what} is invalid: {problems}") from None


def load_yaml(model: type[M], data: bytes, what: str) -> M:
    text = _decode(data, what)
    try:
        raw = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - SafeLoader subclass
    except DocumentError:
        raise
    except yaml.YAMLError as exc:
        raise DocumentError(f"{what} is not valid YAML: {exc}") from None
    return _validate(model, raw, what)


def dump_yaml(model: BaseModel) -> bytes:
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False).encode()


def load_json(model: type[M], data: bytes, what: str) -> M:
    text = _decode(data, what)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{what} is not valid JSON: {exc}") from None
    return _validate(model, raw, what)


def dump_json(model: BaseModel) -> bytes:
    return model.model_dump_json(indent=2).encode()
