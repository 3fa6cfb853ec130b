"""The Dockerfile builds a non-root image with a HEALTHCHECK and installs the adapters by
name; every YAML file of the repository passes yamllint (.yamllint.yaml)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Final

from yamllint import linter
from yamllint.config import YamlLintConfig

from .support import DEPLOY, ROOT

DOCKERFILE: Final = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")


def _stages() -> dict[str, str]:
    parts = re.split(r"^FROM \S+ AS (\w+)\s*$", DOCKERFILE, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_the_default_image_is_the_runtime_one_run_as_a_user_with_a_health_check() -> None:
    stages = _stages()
    assert list(stages)[-1] == "runtime", "the last stage is what a plain docker build makes"
    for name in ("runtime", "demo"):
        stage = stages[name]
        users = re.findall(r"^USER (\S+)", stage, flags=re.MULTILINE)
        assert users, name
        assert not users[-1].startswith(("root", "0")), name
        assert re.search(r"^HEALTHCHECK .*\n\s+CMD .*/healthz", stage, flags=re.MULTILINE), name
        assert 'ENTRYPOINT ["orderhub"]' in stage


def test_the_adapters_are_installed_by_name() -> None:
    adapters = sorted(
        tomllib.loads(p.read_text())["project"]["name"]
        for p in (ROOT / "adapters").glob("*/pyproject.toml")
    )
    for stage in ("runtime", "demo"):
        (named,) = re.findall(r'^ARG ADAPTERS="([^"]+)"', _stages()[stage], flags=re.MULTILINE)
        assert sorted(named.split()) == adapters
        assert "--find-links /wheels orderhub" in _stages()[stage]
    assert "uv.lock" in DOCKERFILE, "pinned by the lock"
    assert "--frozen" in DOCKERFILE


def _yaml_files() -> list[Path]:
    skip = (".venv", "node_modules", ".git")
    return sorted(
        p
        for pattern in ("*.yaml", "*.yml")
        for p in ROOT.rglob(pattern)
        if not any(part in skip or part.startswith(".") for part in p.relative_to(ROOT).parts)
    )


def test_every_yaml_file_passes_yamllint() -> None:
    config = YamlLintConfig(file=str(ROOT / ".yamllint.yaml"))
    files = _yaml_files()
    assert DEPLOY / "compose.yaml" in files
    problems = [
        f"{path.relative_to(ROOT)}:{p.line}:{p.column} {p.desc} ({p.rule})"
        for path in files
        for p in linter.run(path.read_text(encoding="utf-8"), config, str(path))
        if p.level == "error"
    ]
    assert not problems, "\n".join(problems)
