"""Check a pipeline config against its schema and report each mistake in one short line.

The Snakefile calls :func:`check_config` before Snakemake's own validation (which fills in the schema's
defaults). Each problem becomes one line that names the key path, the bad value, what is allowed and,
for a misspelt key or value, the nearest valid one::

    config error: results_dir_x (top level): unknown key; did you mean 'results_dir'? allowed keys: results_dir, stats, datasets
    config error: datasets.ms.training.losses[0].loss: 'blobdice' is not allowed; did you mean 'blob_dice'? allowed: dice, blob_dice, ...

Keys users put in a natural but different place are accepted there: ``instance_labels`` under a
dataset's ``source:`` is moved to the dataset (:func:`normalize_config`).

Example:
    >>> schema = {"type": "object", "additionalProperties": False,
    ...           "properties": {"results_dir": {"type": "string"}}}
    >>> config_problems({"result_dir": "x"}, schema)
    ["result_dir (top level): unknown key; did you mean 'results_dir'? allowed keys: results_dir"]
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from blobloss.errors import ConfigError

__all__ = ["MOVED_KEYS", "check_config", "config_problems", "key_path", "load_schema", "normalize_config"]

#: Keys accepted in a second place inside a dataset: ``{place: [key, ...]}``; they are moved to the dataset.
MOVED_KEYS: dict[str, tuple[str, ...]] = {"source": ("instance_labels",)}

_MAX_PROBLEMS = 6
_MAX_VALUE = 60


def key_path(path: Iterable[Any]) -> str:
    """Dotted key path of a JSON path (``["datasets", "ms", "losses", 0]`` -> ``datasets.ms.losses[0]``).

    Example:
        >>> key_path(["datasets", "ms", "training", "losses", 1, "loss"])
        'datasets.ms.training.losses[1].loss'
        >>> key_path([])
        '(top level)'
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 4] + " ...'"


def _choices(values: Sequence[Any]) -> str:
    return ", ".join("null" if v is None else str(v) for v in values)


def _nearest(word: Any, options: Iterable[Any]) -> str:
    opts = [str(o) for o in options if o is not None]
    hit = difflib.get_close_matches(str(word), opts, n=1, cutoff=0.6)
    return f"did you mean {hit[0]!r}? " if hit else ""


def normalize_config(config: MutableMapping[str, Any]) -> list[str]:
    """Move keys given in a second accepted place (:data:`MOVED_KEYS`) to where the schema wants them.

    ``datasets.<name>.source.instance_labels`` becomes ``datasets.<name>.instance_labels``.

    Args:
        config: The raw config, changed in place.

    Returns:
        One note per moved key.

    Raises:
        ConfigError: When a key is given in both places with different values.

    Example:
        >>> cfg = {"datasets": {"nuc": {"source": {"format": "generic", "instance_labels": True}}}}
        >>> normalize_config(cfg)
        ['datasets.nuc.source.instance_labels read as datasets.nuc.instance_labels']
        >>> cfg["datasets"]["nuc"]["instance_labels"], "instance_labels" in cfg["datasets"]["nuc"]["source"]
        (True, False)
    """
    notes = []
    datasets = config.get("datasets")
    if not isinstance(datasets, MutableMapping):
        return notes
    for name, ds in datasets.items():
        if not isinstance(ds, MutableMapping):
            continue
        for place, keys in MOVED_KEYS.items():
            section = ds.get(place)
            if not isinstance(section, MutableMapping):
                continue
            for key in keys:
                if key not in section:
                    continue
                value = section.pop(key)
                if key in ds and ds[key] != value:
                    raise ConfigError(
                        f"config error: datasets.{name}.{key} is {ds[key]!r} but datasets.{name}.{place}.{key} "
                        f"is {value!r}; set it once, as datasets.{name}.{key}"
                    )
                ds[key] = value
                notes.append(f"datasets.{name}.{place}.{key} read as datasets.{name}.{key}")
    return notes


def _schema_keys(schema: Mapping[str, Any], root: Mapping[str, Any], prefix: str = "", seen: set | None = None,
                 out: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Every property name of the schema -> the key paths where it is allowed (``<name>`` for map keys)."""
    out = {} if out is None else out
    seen = set() if seen is None else seen
    if not isinstance(schema, Mapping):
        return out
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        if ref in seen:
            return out
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {})
        _schema_keys(target, root, prefix, seen | {ref}, out)
    for key, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{key}" if prefix else key
        out.setdefault(key, []).append(path)
        _schema_keys(sub, root, path, seen, out)
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        _schema_keys(extra, root, f"{prefix}.<name>" if prefix else "<name>", seen, out)
    items = schema.get("items")
    if isinstance(items, Mapping):
        _schema_keys(items, root, f"{prefix}[i]", seen, out)
    for comb in ("oneOf", "anyOf", "allOf"):
        for sub in schema.get(comb) or []:
            _schema_keys(sub, root, prefix, seen, out)
    return out


def _format(error: Any, index: dict[str, list[str]]) -> str:
    """One line for a jsonschema ``ValidationError``."""
    where = key_path(error.absolute_path)
    v = error.validator
    sub = error.schema if isinstance(error.schema, Mapping) else {}
    if v == "additionalProperties":
        allowed = list((sub.get("properties") or {}).keys())
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, Mapping) else []
        lines = []
        for key in extra:
            here = f"{where}.{key}" if error.absolute_path else f"{key} (top level)"
            elsewhere = [p for p in index.get(key, [])]
            hint = _nearest(key, allowed)
            if not hint and elsewhere:
                hint = f"{key!r} belongs at {', '.join(sorted(set(elsewhere))[:3])}; "
            lines.append(f"{here}: unknown key; {hint}allowed keys: {_choices(allowed)}")
        return "\n".join(lines)
    if v == "enum":
        return (f"{where}: {_short(error.instance)} is not allowed; {_nearest(error.instance, error.validator_value)}"
                f"allowed: {_choices(error.validator_value)}")
    if v == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{where}: {_short(error.instance)} has the wrong type; expected {expected}"
    if v == "required":
        missing = [k for k in error.validator_value if not isinstance(error.instance, Mapping) or k not in error.instance]
        return f"{where}: required key(s) {', '.join(missing)} missing"
    if v == "propertyNames" or (v == "pattern" and "propertyNames" in error.schema_path):
        return (f"{where}: name {_short(error.instance)} is not allowed; use letters, digits, '_' and '-' "
                "(starting with a letter or digit)")
    if v in ("oneOf", "anyOf"):
        return f"{where}: {_short(error.instance)} is not valid; {sub.get('description', 'see the schema')}"
    message = error.message
    if len(message) > 160:
        message = message[:156] + " ..."
    desc = sub.get("description")
    return f"{where}: {message}" + (f" ({desc})" if desc and len(desc) < 120 else "")


def config_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every schema violation of ``config``, one short line each (most specific first).

    Args:
        config: The config (before defaults are filled in).
        schema: The JSON schema (draft 2020-12).

    Returns:
        The problems; empty when the config is valid.

    Example:
        >>> schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}
        >>> config_problems({"n": 0}, schema)
        ['n: 0 is less than the minimum of 1']
    """
    from jsonschema import Draft202012Validator

    index = _schema_keys(schema, schema)
    validator = Draft202012Validator(schema)
    lines: list[str] = []
    for error in sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.validator)):
        for line in _format(error, index).splitlines():
            if line not in lines:
                lines.append(line)
    return lines


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the YAML/JSON schema file."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def check_config(config: MutableMapping[str, Any], schema_path: str | os.PathLike[str], source: str = "") -> list[str]:
    """Normalize ``config`` in place and raise one short :class:`ConfigError` listing what is wrong.

    Args:
        config: The raw config (changed in place by :func:`normalize_config`).
        schema_path: The schema file.
        source: Where the config came from (the config file names), for the message.

    Returns:
        The notes of :func:`normalize_config` (keys read from a second place).

    Raises:
        ConfigError: At most a handful of lines: ``config error: <key path>: <what>; <fix>``.
    """
    notes = normalize_config(config)
    problems = config_problems(config, load_schema(schema_path))
    if problems:
        shown = [f"config error: {p}" for p in problems[:_MAX_PROBLEMS]]
        if len(problems) > _MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - _MAX_PROBLEMS} more")
        where = f" in {source}" if source else ""
        shown.append(f"(config checked against workflow/schemas/config.schema.yaml{where})")
        raise ConfigError("\n".join(shown))
    return notes
