"""Reading the deploy/ files as a tool would: YAML documents, compose's ``${VAR:-default}``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import yaml

ROOT: Final = Path(__file__).parents[3]
DEPLOY: Final = ROOT / "deploy"
_VARIABLE: Final = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def interpolate(value: str) -> str:
    """Compose's variable syntax with nothing set: each ``${VAR:-default}`` its default."""
    return _VARIABLE.sub(lambda m: m.group(2) or "", value)
