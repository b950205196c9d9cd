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
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise DocumentError(f"YAML aliases are not allowed (line {mark.line + 1})")
        node = super().compose_node(parent, index)
        if node is not None and getattr(node, "anchor", None):
            raise DocumentError(f"YAML anchors are not allowed (line {node.start_mark.line + 1})")
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """Refuse duplicate keys: PyYAML silently keeps the last one, so `sales: 1.0` twice hides a mistake."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: SafeLoader refuses it with its own message
                continue
            if duplicate:
                raise DocumentError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        return super().construct_mapping(node, deep=deep)


def _limit(model: type[BaseModel]) -> int:
    """Documents people write get the default limit; a model may declare a larger one (`max_document_bytes`)
    for documents that grow with the number of projects (release.json) or with history (catalogs)."""
    return int(getattr(model, "max_document_bytes", MAX_DOCUMENT_BYTES))


def _decode(data: bytes, what: str, limit: int = MAX_DOCUMENT_BYTES) -> str:
    if len(data) > limit:
        raise DocumentError(f"{what} is {len(data)} bytes; the limit is {limit}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{what} is not UTF-8: {exc}") from None


def _problem(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "string_type":
        # YAML reads 1.10 as the number 1.1, and yes/no/on/off as booleans.
        msg += f" (YAML read {err['input']!r} as {type(err['input']).__name__}: quote it)"
    return f"{where}: {msg}"


def _validate(model: type[M], raw: Any, what: str) -> M:
    if raw is None:
        raise DocumentError(f"{what} is empty")
    if not isinstance(raw, dict):
        raise DocumentError(f"{what} must be a mapping at the top level, not a {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise DocumentError(f"{what} is invalid: {problems}") from None


def load_yaml(model: type[M], data: bytes, what: str) -> M:
    text = _decode(data, what, _limit(model))
    try:
        raw = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - SafeLoader subclass
    except DocumentError:
        raise
    except yaml.YAMLError as exc:
        raise DocumentError(f"{what} is not valid YAML: {exc}") from None
    except RecursionError:
        raise DocumentError(f"{what} is nested too deeply") from None
    return _validate(model, raw, what)


def dump_yaml(model: BaseModel) -> bytes:
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False).encode()


def load_json(model: type[M], data: bytes, what: str) -> M:
    return _validate(model, parse_json_object(data, what, _limit(model)), what)


def dump_json(model: BaseModel) -> bytes:
    return model.model_dump_json(indent=2).encode()


def canonical(data: Any) -> bytes:
    """The one byte form of a JSON value that is hashed or signed: keys sorted, no whitespace, UTF-8. The values
    are JSON's own (strings, integers, floats, booleans, null), so parsing the bytes and encoding them again gives
    the same bytes."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def dump_canonical(model: BaseModel) -> bytes:
    return canonical(model.model_dump(mode="json"))


def parse_json_object(data: bytes, what: str, limit: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """The raw JSON object in `data` (for what must be checked byte for byte before it is trusted)."""
    text = _decode(data, what, limit)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise DocumentError(f"{what} is nested too deeply") from None
    if not isinstance(raw, dict):
        raise DocumentError(f"{what} must be a mapping at the top level, not a {type(raw).__name__}")
    return raw


def validate_raw(model: type[M], raw: Any, what: str) -> M:
    """A model from an already parsed document, with the same error messages as load_json/load_yaml."""
    return _validate(model, raw, what)
