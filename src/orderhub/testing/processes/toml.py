"""Just enough TOML to write an orderhub configuration file from plain dicts.

``dumps_toml({"database": {"url": url}, "api": {"port": 8000, "keys": [{...}]}})``: a
mapping is a table, a list of mappings an array of tables (``[[api.keys]]``), anything
else a value: strings, booleans, integers, finite floats and lists of them. The standard
library reads TOML (``tomllib``) but does not write it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

__all__ = ["dumps_toml", "toml_value", "write_toml"]

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def toml_value(value: Any) -> str:
    """One TOML value: a string, boolean, integer, finite float or a list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        # a JSON string is a TOML basic string, but for DEL, which TOML wants escaped
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as a TOML value")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_value(key)


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and bool(value)
        and all(isinstance(item, Mapping) for item in value)
    )


def _emit(out: list[str], path: tuple[str, ...], table: Mapping[str, Any], *, array: bool) -> None:
    nested = [(k, v) for k, v in table.items() if isinstance(v, Mapping) or _is_table_array(v)]
    tables = {k for k, _ in nested}
    values = [(k, v) for k, v in table.items() if k not in tables]
    # an array element, a table with values or an empty table needs a header of its own
    if path and (array or values or not nested):
        name = ".".join(_key(part) for part in path)
        out.append(f"[[{name}]]" if array else f"[{name}]")
        out.extend(f"{_key(k)} = {toml_value(v)}" for k, v in values)
        out.append("")
    else:
        out.extend(f"{_key(k)} = {toml_value(v)}" for k, v in values)
    for key, value in nested:
        if isinstance(value, Mapping):
            _emit(out, (*path, key), value, array=False)
        else:
            for item in value:
                _emit(out, (*path, key), item, array=True)


def dumps_toml(document: Mapping[str, Any], *, comment: str = "") -> str:
    """``document`` as TOML text, tables in the order of the mapping, ``comment`` as
    ``#`` lines at the top."""
    out = [f"# {line}".rstrip() for line in comment.splitlines()]
    if out:
        out.append("")
    _emit(out, (), document, array=False)
    return "\n".join(out).rstrip("\n") + "\n"


def write_toml(path: Path, document: Mapping[str, Any], *, comment: str = "") -> Path:
    """Write :func:`dumps_toml` of ``document`` to ``path``; the path."""
    path.write_text(dumps_toml(document, comment=comment), encoding="utf-8")
    return path
