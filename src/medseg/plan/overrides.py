"""Override any plan field by a dotted key, validated like a hand-edited ``plan.json``.

Keys follow the JSON layout of :class:`Plan` with two shorthands: a configuration name may stand
for ``configurations.<name>`` (``"3d.patch_size"``, ``"2.5d.neighbours"``), and a key that
starts with a :class:`Configuration` field (``"training.learning_rate"``) applies to every
configuration.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from medseg._config import from_jsonable, to_jsonable
from medseg.errors import ConfigError
from medseg.plan.plan import Configuration, Plan
from medseg.plan.validate import validate_plan


def expand_key(plan: Plan, key: str) -> list[list[str]]:
    """The JSON paths a dotted override key refers to (several for a shorthand)."""
    parts = key.split(".")
    plan_fields = {f.name for f in dataclasses.fields(Plan)}
    config_fields = {f.name for f in dataclasses.fields(Configuration)}
    short = key.removeprefix("configurations.")
    for name in sorted(plan.configurations, key=len, reverse=True):  # "2.5d" holds a dot
        if short.startswith(f"{name}."):
            return [["configurations", name, *short[len(name) + 1 :].split(".")]]
    if parts[0] in plan_fields:
        return [parts]
    if parts[0] in config_fields:
        return [["configurations", name, *parts] for name in plan.configurations]
    raise ConfigError(
        f"override {key!r}: unknown key {parts[0]!r} (plan fields: {sorted(plan_fields)}; "
        f"configurations: {sorted(plan.configurations)}; configuration fields: "
        f"{sorted(config_fields)})"
    )


def apply_overrides(plan: Plan, overrides: Mapping[str, Any] | None) -> Plan:
    """A copy of ``plan`` with ``overrides`` applied and validated.

    Parameters
    ----------
    plan : Plan
    overrides : mapping of str to JSON value
        E.g. ``{"3d.patch_size": [64, 64, 64], "training.epochs": 20}``. Values are JSON
        values (lists for tuples).

    Returns
    -------
    Plan

    Raises
    ------
    ConfigError
        If a key does not exist, a value has the wrong type or the result is inconsistent.
    """
    if not overrides:
        return plan
    data = to_jsonable(plan)
    for key, value in overrides.items():
        for path in expand_key(plan, key):
            _set(data, path, value, key)
    result = from_jsonable(Plan, data, source="overrides")
    validate_plan(result, source="overrides")
    return result


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split a CLI ``key=value``; the value is parsed as JSON, or kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. training.epochs=20")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _set(data: dict[str, Any], path: list[str], value: Any, key: str) -> None:
    node: Any = data
    for i, part in enumerate(path[:-1]):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"override {key!r}: unknown key {'.'.join(path[: i + 1])!r}")
        node = node[part]
    if not isinstance(node, dict) or (path[-1] not in node and not _is_open_dict(path)):
        raise ConfigError(f"override {key!r}: unknown key {'.'.join(path)!r}")
    node[path[-1]] = value


def _is_open_dict(path: list[str]) -> bool:
    """Dict-valued fields whose keys are data, not field names (new entries allowed)."""
    return len(path) == 2 and path[0] in {"labels", "regions", "channel_names", "budget"}
