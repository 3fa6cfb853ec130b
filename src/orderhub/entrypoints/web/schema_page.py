"""``/schema``: the OpenAPI document as one server-rendered page that works offline.

The usual UIs (Swagger UI, Redoc, Scalar) load their scripts from a CDN, which leaves a
blank page on a warehouse network without internet, and no installed package ships their
assets. This page needs none: every operation (method, path, summary, parameters, request
body, responses) and every component schema is written out as plain HTML, with links to
``/schema/openapi.json`` and ``/schema/openapi.yaml`` for tools. No script, no external
link: a test checks that the page names no other host."""

from __future__ import annotations

from html import escape
from typing import Any, Final

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

__all__ = ["OperationsPage"]

METHODS: Final = ("get", "put", "post", "patch", "delete", "head", "options")

_STYLE: Final = """<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 70rem;
       padding: 1rem 1.5rem; color: #1a1a1a; background: #fff; }
h1 { margin-bottom: .2rem } h2 { border-bottom: 2px solid #ccc; margin-top: 2rem }
details { border: 1px solid #ccc; border-radius: 4px; margin: .4rem 0; padding: .3rem .6rem }
summary { cursor: pointer } code, .path { font-family: ui-monospace, monospace }
.method { display: inline-block; min-width: 4.5rem; font-weight: bold; text-transform: uppercase }
table { border-collapse: collapse; margin: .4rem 0 } td, th { border: 1px solid #ddd;
        padding: .2rem .5rem; text-align: left; vertical-align: top }
</style>"""


class OperationsPage(OpenAPIRenderPlugin):
    def __init__(self, *, path: str = "/") -> None:
        super().__init__(path=path, favicon="", style=_STYLE)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        info = openapi_schema.get("info", {})
        title = escape(str(info.get("title", "API")))
        parts = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{title}</title>{self.style}</head><body>",
            f"<h1>{title} <small>{escape(str(info.get('version', '')))}</small></h1>",
            '<p>The machine-readable document: <a href="openapi.json">openapi.json</a>, '
            '<a href="openapi.yaml">openapi.yaml</a>.</p>',
        ]
        for tag, operations in _by_tag(openapi_schema).items():
            parts.append(f"<h2>{escape(tag)}</h2>")
            parts.extend(_operation(method, path, op) for method, path, op in operations)
        schemas = openapi_schema.get("components", {}).get("schemas", {})
        if schemas:
            parts.append("<h2>Schemas</h2>")
            parts.extend(_schema(name, schema) for name, schema in sorted(schemas.items()))
        parts.append("</body></html>")
        return "\n".join(parts).encode()


def _by_tag(document: dict[str, Any]) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    grouped: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is not None:
                tag = (operation.get("tags") or ["other"])[0]
                grouped.setdefault(tag, []).append((method, path, operation))
    return grouped


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    anchor = escape(operation.get("operationId", f"{method}{path}"))
    rows = [
        f"<details id='{anchor}'><summary><span class='method'>{method}</span> "
        f"<span class='path'>{escape(path)}</span> {escape(operation.get('summary', ''))}"
        "</summary>"
    ]
    if operation.get("description"):
        rows.append(f"<p>{escape(operation['description'])}</p>")
    parameters = operation.get("parameters", [])
    if parameters:
        rows.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th></tr>")
        rows.extend(
            f"<tr><td><code>{escape(p.get('name', ''))}</code></td><td>{escape(p.get('in', ''))}"
            f"</td><td>{escape(_type(p.get('schema', {})))}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td></tr>"
            for p in parameters
        )
        rows.append("</table>")
    body = operation.get("requestBody", {}).get("content", {})
    for media_type, content in body.items():
        rows.append(
            f"<p>Body <code>{escape(media_type)}</code>: "
            f"{escape(_type(content.get('schema', {})))}</p>"
        )
    responses = operation.get("responses", {})
    if responses:
        rows.append("<table><tr><th>status</th><th>answer</th></tr>")
        for status, response in responses.items():
            kinds = ", ".join(
                f"{media}: {_type(c.get('schema', {}))}"
                for media, c in response.get("content", {}).items()
            )
            text = response.get("description", "") + (f" ({kinds})" if kinds else "")
            rows.append(f"<tr><td>{escape(str(status))}</td><td>{escape(text)}</td></tr>")
        rows.append("</table>")
    rows.append("</details>")
    return "\n".join(rows)


def _schema(name: str, schema: dict[str, Any]) -> str:
    rows = [f"<details id='schema-{escape(name)}'><summary><code>{escape(name)}</code></summary>"]
    if schema.get("description"):
        rows.append(f"<p>{escape(schema['description'])}</p>")
    required = set(schema.get("required", ()))
    properties = schema.get("properties", {})
    if properties:
        rows.append("<table><tr><th>field</th><th>type</th><th>required</th><th></th></tr>")
        rows.extend(
            f"<tr><td><code>{escape(field)}</code></td><td>{escape(_type(spec))}</td>"
            f"<td>{'yes' if field in required else 'no'}</td>"
            f"<td>{escape(spec.get('description', ''))}</td></tr>"
            for field, spec in properties.items()
        )
        rows.append("</table>")
    elif schema.get("enum"):
        rows.append(f"<p>one of {escape(', '.join(map(str, schema['enum'])))}</p>")
    rows.append("</details>")
    return "\n".join(rows)


def _type(schema: dict[str, Any]) -> str:
    """A short name for a schema: its reference, type, or alternatives."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for combinator in ("oneOf", "anyOf", "allOf"):
        if combinator in schema:
            return " | ".join(_type(s) for s in schema[combinator])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " | ".join(map(str, kind))
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    return str(kind)
