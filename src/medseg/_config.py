"""JSON round trip for frozen configuration dataclasses.

Configs are written as indented, sorted JSON. Loading validates every key against the dataclass
fields: an unknown key or a value of the wrong type is a :class:`ConfigError` naming the source
and the key. Nested dataclasses, tuples, lists, dicts, ``Optional`` and ``Literal`` are handled.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from medseg._atomic import write_text_atomic
from medseg.errors import ConfigError

T = TypeVar("T")


def to_jsonable(obj: Any) -> Any:
    """Turn a dataclass (recursively) into plain JSON types; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def from_jsonable(cls: type[T], data: Any, *, source: str = "config") -> T:
    """Build dataclass ``cls`` from JSON data, validating keys and types."""
    return _convert(cls, data, source)


def write_json(data: Any, path: Path) -> None:
    """Write JSON (dataclasses allowed) atomically: temporary file, then rename."""
    write_text_atomic(json.dumps(to_jsonable(data), indent=2, sort_keys=True) + "\n", Path(path))


def read_json(path: Path) -> Any:
    """Read a JSON file, turning a missing or malformed file into a :class:`ConfigError`."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: file not found") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from err


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {type(value).__name__}")
        hints = get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {sorted(names)})")
        kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in value.items()}
        try:
            return tp(**kwargs)
        except TypeError as err:
            raise ConfigError(f"{where}: {err}") from err
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from err
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            pairs = enumerate(zip(args, value, strict=True))
            items = [_convert(a, v, f"{where}[{i}]") for i, (a, v) in pairs]
        else:
            item_type = args[0] if args else Any
            items = [_convert(item_type, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        key_type, value_type = get_args(tp) or (Any, Any)
        return {
            _convert(key_type, _key(key_type, k), where): _convert(value_type, v, f"{where}.{k}")
            for k, v in value.items()
        }
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    return value


def _key(key_type: Any, key: str) -> Any:
    if key_type is int:
        try:
            return int(key)
        except ValueError as err:
            raise ConfigError(f"key {key!r} is not an integer") from err
    return key
