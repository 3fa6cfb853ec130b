"""deploy/compose.yaml read the way ``docker compose`` reads it, for a test that runs it.

* :func:`load_project`: the compose files merged (override files as ``-f a -f b``), YAML
  anchors and ``<<`` merges resolved by the YAML loader, every ``${VAR}``,
  ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}`` and ``$$`` interpolated from
  the project's ``.env`` (:func:`read_dotenv`), services of inactive profiles left out.
* :meth:`Project.environment`: a service's environment as its container gets it: the
  image's ``ENV`` (deploy/Dockerfile), then each ``env_file``, then ``environment``.
* :meth:`Project.order`: the services in dependency order (``depends_on``).

Nothing here runs anything: :mod:`tests.e2e.deploy_local` does, on loopback.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

ROOT: Final = Path(__file__).parents[2]
DEPLOY: Final = ROOT / "deploy"
DOCKERFILE: Final = DEPLOY / "Dockerfile"

_VARIABLE: Final = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>\w+))"
)
_REPLACED_LISTS: Final = frozenset({"command", "entrypoint", "test", "profiles"})


class ComposeError(AssertionError):
    """What ``docker compose`` itself would refuse, or a real deployment would hit."""


def _substitute(match: re.Match[str], variables: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    name = match["name"] or match["bare"]
    op, arg = match["op"] or "", match["arg"] or ""
    value = variables.get(name)
    empty = value is None or (op.startswith(":") and value == "")
    if op.endswith("-"):
        return arg if empty else str(value)
    if op.endswith("?"):
        if empty:
            raise ComposeError(f"required variable {name} is missing: {arg}")
        return str(value)
    if op.endswith("+"):
        return "" if empty else arg
    return "" if value is None else value


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """``value`` with compose's variable syntax resolved, in every string inside it."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: _substitute(m, variables), value)
    if isinstance(value, Mapping):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    return value


def read_dotenv(text: str, variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """A ``.env`` / ``env_file`` as compose reads it: ``KEY=VALUE`` lines, ``#`` comments,
    ``export``, single quotes literal, double quotes and bare values interpolated."""
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ")
        if "=" not in line:
            raise ComposeError(f"line {number}: {raw!r} is not KEY=VALUE")
        key, value = (part.strip() for part in line.split("=", 1))
        known = {**(variables or {}), **found}
        if value[:1] == "'" and value.endswith("'") and len(value) > 1:
            found[key] = value[1:-1]
        elif value[:1] == '"' and value.endswith('"') and len(value) > 1:
            found[key] = interpolate(json.loads(value), known)
        else:
            found[key] = interpolate(re.split(r"\s+#", value, maxsplit=1)[0].strip(), known)
    return found


def merge(base: Any, override: Any, key: str = "") -> Any:
    """An override file merged into the base as compose merges them."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in _REPLACED_LISTS:
        return base + [item for item in override if item not in base]
    return override


def _environment(value: Any) -> dict[str, str]:
    if isinstance(value, list):
        return dict(item.split("=", 1) for item in value if "=" in item)
    return {k: "" if v is None else str(v) for k, v in (value or {}).items()}


@dataclass(frozen=True)
class Image:
    """What deploy/Dockerfile's target gives every container: ``ENV``, ``ENTRYPOINT``."""

    env: Mapping[str, str]
    entrypoint: Sequence[str]
    command: Sequence[str]


def read_image(target: str, dockerfile: Path = DOCKERFILE) -> Image:
    """The ``ENV``, ``ENTRYPOINT`` and ``CMD`` of ``target`` and the stages it is built on."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in (line.strip() for line in text.splitlines()):
        word, _, rest = line.partition(" ")
        if word == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else parts[0]
            parent = stages.get(parts[0])
            current = {"env": dict(parent["env"]) if parent else {}, "entrypoint": [], "cmd": []}
            current |= {k: parent[k] for k in ("entrypoint", "cmd")} if parent else {}
            stages[name] = current
        elif current is not None and word == "ENV":
            current["env"].update(item.split("=", 1) for item in shlex.split(rest))
        elif current is not None and word in ("ENTRYPOINT", "CMD"):
            current["entrypoint" if word == "ENTRYPOINT" else "cmd"] = json.loads(rest)
    if target not in stages:
        raise ComposeError(f"{dockerfile.name} has no stage {target!r}")
    stage = stages[target]
    return Image(env=stage["env"], entrypoint=stage["entrypoint"], command=stage["cmd"])


@dataclass
class Project:
    """The merged, interpolated compose project: ``services`` of the active profiles."""

    directory: Path
    services: dict[str, dict[str, Any]]
    variables: Mapping[str, str]
    dotenv: str = ""
    """The project's ``.env`` (what ``cp compose/example.env .env`` made), kept in memory."""
    profiles: tuple[str, ...] = ()
    images: dict[str, Image] = field(default_factory=dict)

    def image(self, name: str) -> Image | None:
        """The Dockerfile target the service's image is built from: its own ``build``, or
        that of a service that builds the same image (compose then does not pull it)."""
        service = self.services[name]
        builders = [s for s in self.services.values() if s.get("image") == service.get("image")]
        build = service.get("build") or next((s["build"] for s in builders if "build" in s), None)
        if build is None:
            return None
        context = (self.directory / build["context"]).resolve()
        if context != ROOT.resolve():
            raise ComposeError(f"{name}: build context {context} is not the repository")
        target = build.get("target", "")
        if target not in self.images:
            self.images[target] = read_image(target, context / build["dockerfile"])
        return self.images[target]

    def environment(self, name: str) -> dict[str, str]:
        """The container's environment: the image's ``ENV``, ``env_file``s, ``environment``."""
        service = self.services[name]
        image = self.image(name)
        env = dict(image.env) if image else {}
        files = service.get("env_file") or []
        for entry in [files] if isinstance(files, str | dict) else files:
            spec = {"path": entry} if isinstance(entry, str) else entry
            path = self.directory / spec["path"]
            if path.resolve() == (self.directory / ".env").resolve():
                env.update(read_dotenv(self.dotenv, self.variables))
            elif path.exists():
                env.update(read_dotenv(path.read_text(encoding="utf-8"), self.variables))
            elif spec.get("required", True):
                raise ComposeError(f"{name}: env_file {path} does not exist")
        env.update(_environment(service.get("environment")))
        return env

    def argv(self, name: str) -> list[str]:
        """``entrypoint`` + ``command``, each the image's unless the service sets it."""
        service = self.services[name]
        image = self.image(name)
        entrypoint = service.get("entrypoint", image.entrypoint if image else [])
        command = service.get("command", image.command if image else [])
        return [str(part) for part in [*entrypoint, *command]]

    def depends_on(self, name: str) -> dict[str, str]:
        """``{service: condition}``."""
        needed = self.services[name].get("depends_on") or {}
        if isinstance(needed, list):
            return dict.fromkeys(needed, "service_started")
        return {other: how.get("condition", "service_started") for other, how in needed.items()}

    def order(self) -> list[str]:
        """Every service after those it depends on (compose's start order)."""
        done: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in path:
                raise ComposeError(f"dependency cycle: {' -> '.join((*path, name))}")
            if name in done:
                return
            if name not in self.services:
                raise ComposeError(f"{path[-1]} depends on {name}, not in the project")
            for other in self.depends_on(name):
                visit(other, (*path, name))
            done.append(name)

        for name in self.services:
            visit(name, ())
        return done


def load_project(
    files: Sequence[Path] = (), *, dotenv: str = "", profiles: Sequence[str] = ()
) -> Project:
    """``docker compose -f files[0] -f ... --profile ...`` run in deploy/, with ``dotenv``
    as its ``.env`` (the shell sets nothing), also what ``env_file: ./.env`` reads: it is
    never written into the tree. Without ``files``: the ``.env``'s ``COMPOSE_FILE``, else
    compose.yaml."""
    variables = read_dotenv(dotenv)
    if not files:
        separator = variables.get("COMPOSE_PATH_SEPARATOR", ":")
        names = variables.get("COMPOSE_FILE", "compose.yaml").split(separator)
        files = [DEPLOY / name for name in names]
    directory = files[0].parent
    merged: dict[str, Any] = {}
    for path in files:
        merged = merge(merged, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    document = interpolate({k: v for k, v in merged.items() if not k.startswith("x-")}, variables)
    services = {
        name: service
        for name, service in document["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }
    return Project(directory, services, variables, dotenv, tuple(profiles))
