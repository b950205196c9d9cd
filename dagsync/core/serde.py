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


def _construct_unique_mapping(loader: Any, node: Any, deep: bool, base: Any) -> Any:
    """Refuse duplicate keys: PyYAML silently keeps the last one, so `sales: 1.0` twice hides a mistake."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # unhashable key: SafeLoader refuses it with its own message
            continue
        if duplicate:
            raise DocumentError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
    return base.construct_mapping(loader, node, deep=deep)


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases (no billion-laughs expansion) and duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise DocumentError(f"YAML aliases are not allowed (line {mark.line + 1})")
        node = super().compose_node(parent, index)
        if node is not None and getattr(node, "anchor", None):
            raise DocumentError(f"YAML anchors are not allowed (line {node.start_mark.line + 1})")
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        return _construct_unique_mapping(self, node, deep, yaml.SafeLoader)


# libyaml when PyYAML has it: about 3x quicker on a 10,000-project manifest (docs/benchmarks.md). Its composer is C,
# so aliases are refused from its event stream first (also C), before anything is built.
_CSafeLoader: Any = getattr(yaml, "CSafeLoader", None)
_CSafeDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _FastLoader(_CSafeLoader or yaml.SafeLoader):  # type: ignore[misc]
    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        return _construct_unique_mapping(self, node, deep, _CSafeLoader or yaml.SafeLoader)


MAX_YAML_DEPTH = 100  # the documents people write nest a few levels; the pure-Python loader stopped at ~300


def _refuse_aliases(text: str, what: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_CSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise DocumentError(f"YAML aliases are not allowed (line {line})")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise DocumentError(f"{what} is nested too deeply")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DocumentError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise DocumentError(f"{name} is not a YAML value; quote it")


def _load_json_form(text: str) -> Any:
    """A YAML document written in its JSON form (every JSON document is YAML, and reads the same: strings are
    quoted, so nothing is resolved as YAML 1.1 would): the JSON parser, 4 ms where libyaml takes 130 on a
    10,000-project manifest. None: not JSON after all, so YAML reads it (and names what is wrong)."""
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
    except json.JSONDecodeError:
        return None


def _load_yaml(text: str, what: str) -> Any:
    if text.lstrip().startswith("{") and (raw := _load_json_form(text)) is not None:
        return raw
    if _CSafeLoader is None:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - SafeLoader subclass
    _refuse_aliases(text, what)
    return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - CSafeLoader subclass


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
        raw = _load_yaml(text, what)
    except DocumentError:
        raise
    except yaml.YAMLError as exc:
        raise DocumentError(f"{what} is not valid YAML: {exc}") from None
    except RecursionError:
        raise DocumentError(f"{what} is nested too deeply") from None
    return _validate(model, raw, what)


def dump_yaml(model: BaseModel) -> bytes:
    return yaml.dump(model.model_dump(mode="json"), Dumper=_CSafeDumper, sort_keys=False).encode()


def dump_yaml_json(model: BaseModel) -> bytes:
    """YAML in its JSON form, one key a line: what the publisher writes for a document that grows with the number
    of projects (the manifest), so that every read of it takes the JSON parser's path (`_load_json_form`)."""
    return json.dumps(model.model_dump(mode="json"), indent=1, ensure_ascii=False).encode() + b"\n"


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
