"""Override any plan field by a dotted key, validated like a hand-edited ``plan.json``.

Keys follow the JSON layout of :class:`Plan` with two shorthands: a configuration name may stand
for ``configurations.<name>`` (``"3d.patch_size"``, ``"2.5d.neighbours"``), and a key that
starts with a :class:`Configuration` field (``"training.learning_rate"``) applies to every
configuration where it is valid: a configuration it would make inconsistent (lesion synthesis
on a 2.5D configuration, whose input holds neighbour slices) keeps its own value, and the log
says so. A key that fits no configuration, or one aimed at a configuration by name, is an error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any

from medseg._config import from_jsonable, to_jsonable
from medseg.errors import ConfigError
from medseg.plan.plan import Configuration, Plan
from medseg.plan.validate import configuration_problems, validate_plan

logger = logging.getLogger(__name__)


def expand_key(plan: Plan, key: str) -> list[list[str]]:
    """The JSON paths a dotted override key refers to (several for a shorthand)."""
    parts = key.split(".")
    plan_fields = {f.name for f in dataclasses.fields(Plan)}
    config_fields = {f.name for f in dataclasses.fields(Configuration)}
    name = _named_configuration(plan, key)
    if name is not None:
        rest = key.removeprefix("configurations.")[len(name) + 1 :]
        return [["configurations", name, *rest.split(".")]]
    if parts[0] in plan_fields:
        return [parts]
    if parts[0] in config_fields:
        return [["configurations", name, *parts] for name in plan.configurations]
    raise ConfigError(
        f"override {key!r}: unknown key {parts[0]!r} (plan fields: {sorted(plan_fields)}; "
        f"configurations: {sorted(plan.configurations)}; configuration fields: "
        f"{sorted(config_fields)})"
    )


def _named_configuration(plan: Plan, key: str) -> str | None:
    """The configuration ``key`` names (``"3d.patch_size"``, ``"configurations.2.5d.plane"``)."""
    short = key.removeprefix("configurations.")
    for name in sorted(plan.configurations, key=len, reverse=True):  # "2.5d" holds a dot
        if short.startswith(f"{name}."):
            return name
    return None


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
    result = _applied(plan, overrides)
    shorthand = [key for key in overrides if _is_shorthand(plan, key)]
    refused = {
        name: problems
        for name, config in result.configurations.items()
        if shorthand and (problems := configuration_problems(config, result))
    }
    if refused and len(refused) < len(result.configurations):
        named = {k: v for k, v in overrides.items() if k not in shorthand}
        fallback = _applied(plan, named) if named else plan
        configurations = dict(result.configurations)
        for name, problems in refused.items():
            configurations[name] = fallback.configurations[name]
            logger.info(
                "overrides %s not applied to configuration %s: %s",
                ", ".join(shorthand),
                name,
                "; ".join(problems),
            )
        result = dataclasses.replace(result, configurations=configurations)
    validate_plan(result, source="overrides")
    return result


def _applied(plan: Plan, overrides: Mapping[str, Any]) -> Plan:
    """``plan`` with ``overrides`` set, types checked but not yet validated as a whole."""
    data = to_jsonable(plan)
    for key, value in overrides.items():
        for path in expand_key(plan, key):
            _set(data, path, value, key)
    return from_jsonable(Plan, data, source="overrides")


def _is_shorthand(plan: Plan, key: str) -> bool:
    """Whether ``key`` addresses every configuration (it starts with a configuration field)."""
    plan_fields = {f.name for f in dataclasses.fields(Plan)}
    return _named_configuration(plan, key) is None and key.split(".")[0] not in plan_fields


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
