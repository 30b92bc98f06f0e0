"""YAML documents that remember where each value came from (file and line, or a --set flag)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rnnlab.errors import ConfigError

Key = tuple[str | int, ...]


def dotted(path: Key) -> str:
    return ".".join(str(p) for p in path)


@dataclass
class Source:
    """A parsed YAML mapping plus the origin of every key path in it."""

    path: Path | None
    data: dict[str, Any]
    lines: dict[Key, int] = field(default_factory=dict)
    overrides: dict[Key, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "<config>"

    def where(self, key: Key) -> str:
        """``file, line N, key a.b`` for the closest key path that has a known origin."""
        for n in range(len(key), 0, -1):  # an override of a parent replaced everything below
            if key[:n] in self.overrides:
                return f"{self.overrides[key[:n]]}, key {dotted(key)}"
        for n in range(len(key), 0, -1):
            if key[:n] in self.lines:
                return f"{self.name}, line {self.lines[key[:n]]}, key {dotted(key)}"
        return f"{self.name}, key {dotted(key)}" if key else self.name

    def error(self, key: Key, message: str) -> ConfigError:
        return ConfigError(f"{self.where(key)}: {message}")


MERGE = "tag:yaml.org,2002:merge"  # YAML's ``<<`` merge key may repeat


def duplicated_key(node: yaml.Node | None, prefix: Key = ()) -> tuple[Key, int, int] | None:
    """The first key written twice in one mapping: ``(key path, first line, second line)``.

    PyYAML keeps the later value silently; a config where a key appears twice is refused instead,
    since one of the two values the user wrote would be ignored.
    """
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for k, v in node.value:
            line = k.start_mark.line + 1
            if isinstance(k, yaml.ScalarNode) and k.tag != MERGE:
                if k.value in seen:
                    return (*prefix, k.value), seen[k.value], line
                seen[k.value] = line
            found = duplicated_key(v, (*prefix, k.value))
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            found = duplicated_key(v, (*prefix, i))
            if found:
                return found
    return None


def _lines(node: yaml.Node, prefix: Key, out: dict[Key, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = (*prefix, k.value)
            out[key] = k.start_mark.line + 1
            _lines(v, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[(*prefix, i)] = v.start_mark.line + 1
            _lines(v, (*prefix, i), out)


def load_yaml(path: str | Path) -> Source:
    """Read a YAML mapping; a missing file, bad YAML or a non-mapping is a :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; check the path (cwd: {Path.cwd()})") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it as a YAML file ({exc})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{at}: malformed YAML: {problem}") from None
    twice = duplicated_key(node)
    if twice:
        key, first, second = twice
        raise ConfigError(
            f"{path}, line {second}, key {dotted(key)}: duplicated key {str(key[-1])!r}, "
            f"already given on line {first}; keep one of the two (YAML would silently use the "
            "later)"
        )
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"{path}: expected a mapping of keys (dataset:, cell:, ...), got {kind}")
    lines: dict[Key, int] = {}
    if node is not None:
        _lines(node, (), lines)
    return Source(path, data, lines)


def apply_override(source: Source, assignment: str) -> None:
    """Apply ``dotted.key=value`` (value parsed as YAML) to ``source`` in place."""
    flag = f"--set {assignment}"
    key_text, sep, value_text = assignment.partition("=")
    if not sep or not key_text.strip():
        raise ConfigError(f"{flag}: expected KEY=VALUE, e.g. --set train.lr=0.01")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
        twice = duplicated_key(yaml.compose(value_text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{flag}: the value is not valid YAML ({exc})") from None
    if twice:
        raise ConfigError(
            f"{flag}: duplicated key {str(twice[0][-1])!r} in the value; keep one of the two"
        )
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key_text.strip().split(".")]
    node: Any = source.data
    for depth, part in enumerate(parts[:-1]):
        key = parts[: depth + 1]
        if isinstance(node, dict):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            node = nxt
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            if isinstance(node[part], str):  # remedies: [clip] -> [{name: clip}]
                node[part] = {"name": node[part]}
            node = node[part]
        else:
            where = dotted(tuple(key))
            raise ConfigError(f"{flag}: cannot set inside {where}, which is {node!r}")
    last = parts[-1]
    in_list = isinstance(node, list) and isinstance(last, int) and last < len(node)
    if in_list or isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"{flag}: cannot set {dotted(tuple(parts))}: its parent is {node!r}")
    source.overrides[tuple(parts)] = flag
