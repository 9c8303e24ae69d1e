"""The hot endpoints' one declaration: path, handler, and what `/openapi.json` says of them.

Why: poll, long poll, SSE and publish are served as plain ASGI by `server.front_door` (see there
why), so FastAPI never routes them and cannot document them from a function signature. Each is
declared once here instead, with the same pydantic model that validates its query, and
`document()` adds them to FastAPI's OpenAPI document in the shape FastAPI gives its own routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from server.runtime import Runtime

__all__ = ["UNKNOWN_SYMBOL", "Handler", "HeaderDoc", "HotRoute", "ResponseDoc", "document"]

Handler = Callable[["Runtime", Scope, Receive, Send], Awaitable[None]]

VALIDATION_ERROR = {"$ref": "#/components/schemas/HTTPValidationError"}


@dataclass(frozen=True, slots=True)
class HeaderDoc:
    name: str
    description: str
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class ResponseDoc:
    description: str
    model: type[BaseModel] | None = None
    """The JSON body's model, if any."""
    media_type: str | None = None
    """A non-JSON body's media type (`text/event-stream`)."""
    batch: str | None = None
    """Also documents `{batch: [model, ...]}`, what a batch request gets."""


UNKNOWN_SYMBOL = ResponseDoc("Unknown symbol.")


@dataclass(frozen=True, slots=True)
class HotRoute:
    method: str
    path: str
    """An OpenAPI path; at most one `{parameter}`, at the end (`/api/price/{symbol}`)."""
    handler: Handler
    summary: str
    description: str
    tag: str
    responses: Mapping[int, ResponseDoc]
    query: type[BaseModel] | None = None
    """The model that validates the query string, and documents it."""
    headers: tuple[HeaderDoc, ...] = ()
    request_body: Mapping[str, Any] | None = None
    """An OpenAPI request body object, as is."""
    prefix: str = field(init=False)
    """What a request path starts with; the rest is the path parameter (exact match if none)."""
    parameter: str | None = field(init=False)

    def __post_init__(self) -> None:
        found = re.fullmatch(r"(.*?)\{(\w+)\}", self.path)
        object.__setattr__(self, "prefix", found.group(1) if found else self.path)
        object.__setattr__(self, "parameter", found.group(2) if found else None)

    def matches(self, method: str, path: str) -> bool:
        if method != self.method:
            return False
        return path.startswith(self.prefix) if self.parameter else path == self.path

    def operation(self) -> dict[str, Any]:
        """This route as an OpenAPI operation object."""
        parameters: list[dict[str, Any]] = []
        if self.parameter:
            name = self.parameter
            parameters.append(
                {"name": name, "in": "path", "required": True, "schema": {"type": "string", "title": name.title()}}
            )
        if self.query is not None:
            schema = self.query.model_json_schema()
            required = set(schema.get("required", ()))
            for name, prop in schema["properties"].items():
                described = {k: v for k, v in prop.items() if k != "description"}
                parameters.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in required,
                        "schema": described,
                        "description": prop.get("description", ""),
                    }
                )
        for header in self.headers:
            header_schema: dict[str, Any] = {"type": "string", "title": header.name}
            if header.max_length is not None:
                header_schema["maxLength"] = header.max_length
            parameters.append(
                {
                    "name": header.name,
                    "in": "header",
                    "required": False,
                    "schema": header_schema,
                    "description": header.description,
                }
            )
        responses: dict[str, Any] = {str(code): _response(doc) for code, doc in sorted(self.responses.items())}
        if self.query is not None or self.request_body is not None:
            responses.setdefault(
                "422",
                {"description": "Validation Error", "content": {"application/json": {"schema": VALIDATION_ERROR}}},
            )
        operation: dict[str, Any] = {
            "tags": [self.tag],
            "summary": self.summary,
            "description": self.description,
            "operationId": f"{self.handler.__module__.rpartition('.')[2]}_{self.method.lower()}",
            "parameters": parameters,
            "responses": responses,
        }
        if self.request_body is not None:
            operation["requestBody"] = dict(self.request_body)
        return operation


def _response(doc: ResponseDoc) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": doc.description}
    if doc.model is not None:
        ref: dict[str, Any] = {"$ref": f"#/components/schemas/{doc.model.__name__}"}
        schema = ref
        if doc.batch is not None:
            batch = {
                "type": "object",
                "required": [doc.batch],
                "properties": {doc.batch: {"type": "array", "items": ref}},
            }
            schema = {"oneOf": [ref, batch]}
        answer["content"] = {"application/json": {"schema": schema}}
    elif doc.media_type is not None:
        answer["content"] = {doc.media_type: {}}
    return answer


def document(openapi: dict[str, Any], routes: tuple[HotRoute, ...]) -> dict[str, Any]:
    """FastAPI's OpenAPI document with the hot routes added (their models among the components)."""
    paths: dict[str, Any] = openapi.setdefault("paths", {})
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = route.operation()
    models = {doc.model for route in routes for doc in route.responses.values() if doc.model is not None}
    if models:
        _, schemas = models_json_schema(
            [(model, "serialization") for model in sorted(models, key=lambda m: m.__name__)],
            ref_template="#/components/schemas/{model}",
        )
        components = openapi.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in schemas.get("$defs", {}).items():
            components.setdefault(name, schema)
    return openapi
