"""What the OpenAPI document says beyond what each route declares: the refusals the edge
makes on every route, and the links from the lists to what their items name.

* Litestar documents, on every operation with a parameter or a body, a 400 of its own
  shape (``status_code``, ``detail``, ``extra``) for its validation errors. The app never
  sends it: a validation error is a 422 problem and every error is a problem document
  (``problems.py``). It is taken out; a route that can answer 400 declares it.
* A NUL in a path parameter, the query string or a header is a 422 ``validation-error`` on
  every route (``strict.RefuseNulMiddleware``), and every route that takes a JSON body
  refuses one that is not JSON (400 ``malformed-json``) or over ``[api] max_body_bytes``
  (413 ``payload-too-large``).
* A JSON body the handler takes as optional (``X | None = None``, documented as ``X`` or
  ``null``) may be left out: Litestar marks every body required.
* ``Retry-After`` on the feed's 429 (too-many-long-polls).
* Links (OpenAPI ``links``): an order's id from ``GET /orders`` to the order and to its
  commands, a command's and an inbox message's id from the ops lists to their actions.
  Clients (and Schemathesis's stateful tests) follow them.

Applied to every operation when the app is built, so a route added later gets them too
(``tests/unit/web/test_web_fuzz.py`` checks every response against the document)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from litestar import Litestar
from litestar.openapi.spec import (
    Link,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    PathItem,
    Reference,
    Schema,
)

from orderhub.entrypoints.web.problems import PROBLEM_MEDIA_TYPE
from orderhub.entrypoints.web.schemas import Problem

__all__ = ["LINKS", "document_contract"]

JSON: Final = "application/json"
METHODS: Final = ("get", "put", "post", "patch", "delete")

EVERY_ROUTE: Final = {422: "Problem (422): validation-error (a NUL in the path, query or a header)"}
JSON_BODY: Final = {
    400: "Problem (400): malformed-json",
    413: "Problem (413): payload-too-large",
}

RESPONSE_HEADERS: Final = {
    ("get", "/api/v1/feed", "429"): {
        "Retry-After": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.INTEGER, minimum=0),
            description="Seconds to wait before opening another long-poll",
            required=True,
        )
    },
}

ORDER_ID_FROM_LIST: Final = "$response.body#/orders/0/id"
ORDER_ID_FROM_PATH: Final = "$request.path.order_id"
ORDER_ACTIONS: Final = (
    ("post", "/api/v1/orders/{order_id}/accept"),
    ("post", "/api/v1/orders/{order_id}/reject"),
    ("post", "/api/v1/orders/{order_id}/shipments"),
    ("post", "/api/v1/orders/{order_id}/deliveries"),
    ("post", "/api/v1/orders/{order_id}/cancellations"),
    ("post", "/api/v1/ops/orders/{order_id}/resync"),
    ("post", "/api/v1/ops/orders/{order_id}/attention/resolve"),
)
LINKS: Final[tuple[tuple[str, str, str, tuple[tuple[str, str], ...], str, str], ...]] = (
    # (method, path, status of the response) -> (method, path) of each operation it links
    # to, the parameter it gives them and where the response holds it
    (
        "get",
        "/api/v1/orders",
        "200",
        (("get", "/api/v1/orders/{order_id}"), *ORDER_ACTIONS),
        "order_id",
        ORDER_ID_FROM_LIST,
    ),
    ("get", "/api/v1/orders/{order_id}", "200", ORDER_ACTIONS, "order_id", ORDER_ID_FROM_PATH),
    (
        "get",
        "/api/v1/ops/failed-commands",
        "200",
        (
            ("post", "/api/v1/ops/commands/{command_id}/retry"),
            ("post", "/api/v1/ops/commands/{command_id}/abandon"),
        ),
        "command_id",
        "$response.body#/commands/0/id",
    ),
    (
        "get",
        "/api/v1/ops/failed-messages",
        "200",
        (("post", "/api/v1/ops/messages/{message_id}/retry"),),
        "message_id",
        "$response.body#/messages/0/id",
    ),
)


def document_contract(app: Litestar) -> Litestar:
    """Complete the app's OpenAPI document (generated once, then served as it is)."""
    document = app.openapi_schema
    for _, _, operation in _operations(document.paths or {}):
        responses = operation.responses if operation.responses is not None else {}
        operation.responses = responses
        generated = responses.get("400")
        if isinstance(generated, OpenAPIResponse) and _is_litestar_error(generated):
            del responses["400"]
        _add_problems(responses, EVERY_ROUTE)
        if _takes_json(operation):
            _add_problems(responses, JSON_BODY)
            _optional_if_nullable(operation)
    _add_headers(document.paths or {})
    _add_links(document.paths or {})
    return app


def _operations(paths: dict[str, PathItem]) -> Iterator[tuple[str, str, Operation]]:
    for path, item in paths.items():
        for method in METHODS:
            operation = getattr(item, method, None)
            if isinstance(operation, Operation):
                yield path, method, operation


def _is_litestar_error(response: OpenAPIResponse) -> bool:
    """Litestar's own error response: JSON, not a problem document."""
    content = response.content or {}
    return JSON in content and PROBLEM_MEDIA_TYPE not in content


def _takes_json(operation: Operation) -> bool:
    body = operation.request_body
    return body is not None and not isinstance(body, Reference) and JSON in (body.content or {})


def _optional_if_nullable(operation: Operation) -> None:
    body = operation.request_body
    if body is None or isinstance(body, Reference):
        return
    schema = body.content[JSON].schema
    variants = schema.one_of if isinstance(schema, Schema) else None
    if any(isinstance(v, Schema) and v.type == OpenAPIType.NULL for v in variants or ()):
        body.required = False


def _add_problems(responses: dict[str, OpenAPIResponse | Reference], add: dict[int, str]) -> None:
    for status, description in add.items():
        if str(status) not in responses:
            responses[str(status)] = _problem(description)


def _problem(description: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={
            PROBLEM_MEDIA_TYPE: OpenAPIMediaType(
                schema=Reference(ref=f"#/components/schemas/{Problem.__name__}")
            )
        },
    )


def _add_headers(paths: dict[str, PathItem]) -> None:
    found = {(method, path): operation for path, method, operation in _operations(paths)}
    for (method, path, status), headers in RESPONSE_HEADERS.items():
        response = (found[(method, path)].responses or {}).get(status)
        assert isinstance(response, OpenAPIResponse), (method, path, status)
        response.headers = {**(response.headers or {}), **headers}


def _add_links(paths: dict[str, PathItem]) -> None:
    found = {(method, path): operation for path, method, operation in _operations(paths)}
    for method, path, status, targets, parameter, source in LINKS:
        response = (found[(method, path)].responses or {}).get(status)
        assert isinstance(response, OpenAPIResponse), (method, path, status)
        links = response.links if response.links is not None else {}
        for target in targets:
            operation_id = found[target].operation_id
            assert operation_id is not None, target
            links[operation_id] = Link(operation_id=operation_id, parameters={parameter: source})
        response.links = links
