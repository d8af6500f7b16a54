"""The route table is the one source of the API: the OpenAPI document carries a real schema for
every body, and every path a node requests is built from the table."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from ramnet._errors import InvalidInputError
from ramnet.mesh.protocol import messages
from ramnet.mesh.protocol.routes import ROUTES, Json, Wire, openapi, openapi_path, route, url
from ramnet.mesh.protocol.wire import WIRE_CONTENT_TYPE

#: A value for each path parameter the routes take.
SAMPLE = {"job_id": "job7", "shard_id": "12", "dispute_id": 3}


def _schema(doc: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    assert set(ref) == {"$ref"}, ref
    name = ref["$ref"].removeprefix("#/components/schemas/")
    schema: dict[str, Any] = doc["components"]["schemas"][name]
    return schema


def _body_schema(doc: dict[str, Any], content: dict[str, Any], body: Json | Wire) -> None:
    # A JSON body refers to its message's schema; a wire body is binary, with its metadata's
    # schema beside it. Either way the message's schema is a closed object with properties.
    if isinstance(body, Json):
        schema = _schema(doc, content["application/json"]["schema"])
        name = body.message.__name__
    else:
        media = content[WIRE_CONTENT_TYPE]
        assert media["schema"] == {"type": "string", "format": "binary"}
        schema = _schema(doc, media["x-ramnet-metadata"])
        name = body.meta.__name__
    assert schema["title"] == name
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema != {"type": "object"}
    if name != "ReleaseRequest":  # the one message with nothing to say
        assert schema["properties"], name


def test_the_document_has_a_schema_for_every_request_and_reply() -> None:
    doc = openapi()
    assert doc["openapi"] == "3.1.0"
    listed = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert listed == {(openapi_path(r), r.method.lower()) for r in ROUTES}
    for spec in ROUTES:
        op = doc["paths"][openapi_path(spec)][spec.method.lower()]
        assert op["operationId"] == spec.name and op["summary"] == spec.summary
        _body_schema(doc, op["responses"]["200"]["content"], spec.reply)
        if spec.request is None:
            assert "requestBody" not in op
        else:
            _body_schema(doc, op["requestBody"]["content"], spec.request)
        for status, response in op["responses"].items():
            if status != "200":
                error = _schema(doc, response["content"]["application/json"]["schema"])
                assert error["required"] == ["error"]
        assert ("security" in op) == spec.signed
        declared = {p["name"]: p["in"] for p in op.get("parameters", [])}
        assert declared == {
            **dict.fromkeys(spec.params, "path"),
            **dict.fromkeys(spec.query, "query"),
        }
    assert doc["components"]["securitySchemes"]["ramnetSignature"]["name"] == "X-Ramnet-Signature"


def test_the_document_is_valid_json_and_its_own_message() -> None:
    doc = openapi()
    assert msgspec.json.decode(msgspec.json.encode(doc)) == doc
    msgspec.convert(doc, messages.ApiDocument)


def test_an_empty_json_body_is_required_only_where_a_field_is() -> None:
    doc = openapi()
    required = {
        spec.name: doc["paths"][openapi_path(spec)][spec.method.lower()]["requestBody"]["required"]
        for spec in ROUTES
        if spec.request is not None
    }
    # Registering with an empty body ({}) takes every default.
    assert required["register"] is False and required["shard_release"] is False
    assert required["shard_commit"] is True and required["submit_job"] is True


def test_a_commitments_digest_is_64_hex_digits_in_the_document() -> None:
    # The coordinator checks a digest's form nowhere else: the message says it, and the document.
    digest = openapi()["components"]["schemas"]["CommitRequest"]["properties"]["digest"]
    assert digest["type"] == "string" and digest["pattern"] == "^[0-9a-fA-F]{64}$"
    assert digest["minLength"] == digest["maxLength"] == 64


def test_route_names_are_unique_and_bodies_are_sized() -> None:
    assert len({r.name for r in ROUTES}) == len(ROUTES)
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)
    for spec in ROUTES:
        assert route(spec.name) is spec
        uploads = isinstance(spec.request, Wire)
        assert spec.size == ("arrays" if uploads else "small"), spec.name
    assert [r.name for r in ROUTES if r.bound] == ["shard_reveal"]
    assert {r.name for r in ROUTES if not r.signed} == {"health", "openapi", "ledger"}


@pytest.mark.parametrize("spec", ROUTES, ids=lambda r: r.name)
def test_url_fills_the_template(spec: Any) -> None:
    params = {name: SAMPLE[name] for name in spec.params}
    target = url(spec.name, **params)
    assert re.fullmatch(_pattern(spec.path), target), target
    if spec.query:
        assert url(spec.name, {"wait": 1.0}, **params) == target + "?wait=1"
        assert url(spec.name, {"wait": 0.25}, **params) == target + "?wait=0.25"


def test_url_refuses_what_the_route_does_not_take() -> None:
    assert url("shard_commit", shard_id="7") == "/v1/shards/7/commit"
    assert url("verdict", dispute_id=4) == "/v1/validations/4/verdict"
    assert url("claim", {"wait": 0}) == "/v1/work?wait=0"
    with pytest.raises(InvalidInputError):
        url("shard_commit")
    with pytest.raises(InvalidInputError):
        url("shard_commit", shard_id="7", job_id="j")
    with pytest.raises(InvalidInputError):
        url("verdict", dispute_id="4")  # an int parameter
    with pytest.raises(InvalidInputError):
        url("verdict", dispute_id=True)
    with pytest.raises(InvalidInputError):
        url("register", {"wait": 1})
    with pytest.raises(KeyError):
        url("no_such_route")


def _pattern(template: str) -> str:
    # A path template as a regular expression, as Starlette matches it.
    out = re.escape(template)
    out = re.sub(r"\\\{(\w+):int\\\}", "[0-9]+", out)
    return re.sub(r"\\\{(\w+)\\\}", "[^/]+", out)
