"""YAML reading with line numbers, so that errors can point at the line a user wrote."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, Problem


class _LineLoader(yaml.SafeLoader):
    pass


# libyaml's parser when PyYAML was built with it (the PyPI wheels are): the registry's
# YAML loads about 6× faster, which a warm run feels; the nodes carry the same marks.
class _FastLineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """libyaml's parser; a file it rejects is parsed again by _LineLoader, whose error
    messages name the offending character (libyaml's do not)."""


def _construct_mapping(loader, node, deep=False):
    mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=True)
    # remember where each key was written; "__lines__" never collides with user keys
    mapping["__lines__"] = {k.value: k.start_mark.line + 1 for k, _ in node.value if hasattr(k, "value")}
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


# dates stay strings (issued: 2024-05-29) — users do not expect date objects
_RESOLVERS = {k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
              for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _loader in (_LineLoader, _FastLineLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _loader.yaml_implicit_resolvers = _RESOLVERS


def read_text(path: Path) -> str:
    raw = Path(path).read_bytes()
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise InputError(Problem(str(path), "", "cannot decode the file as UTF-8 or GBK", "save it as UTF-8"))


def load_yaml(path: Path) -> Any:
    """Load YAML; mappings carry ``__lines__`` (key → line) and ``__line__``."""
    text = read_text(path)
    if not text.strip():
        raise InputError(Problem(str(path), "", "the file is empty", "write the document or remove the file"))
    try:
        return yaml.load(text, Loader=_FastLineLoader)
    except yaml.YAMLError:
        pass
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(Problem(str(path), where, f"YAML syntax error: {what}",
                                 "check indentation, colons and quotes on that line")) from None


def strip_lines(obj: Any) -> Any:
    """Plain data without the line bookkeeping (for hashing and saving)."""
    if isinstance(obj, dict):
        return {k: strip_lines(v) for k, v in obj.items() if k not in ("__lines__", "__line__")}
    if isinstance(obj, list):
        return [strip_lines(v) for v in obj]
    return obj


def line_of(mapping: Any, key: str | None = None) -> str:
    if not isinstance(mapping, dict):
        return ""
    if key is not None and key in mapping.get("__lines__", {}):
        return f"line {mapping['__lines__'][key]}"
    if "__line__" in mapping:
        return f"line {mapping['__line__']}"
    return ""


def user_keys(mapping: dict) -> list[str]:
    return [k for k in mapping if k not in ("__lines__", "__line__")]
