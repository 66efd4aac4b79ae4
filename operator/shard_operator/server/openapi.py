"""The OpenAPI 3.1 document served at ``GET /v1/openapi.json``.

It must stay truthful: every status a route can answer is listed with its body schema,
and every request the schemas accept is handled (it may still be 404 for a key this shard
does not hold, or 409, which are listed too).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from ..keycodec import KeyEncoding
from .validation import MAX_HEIGHT, MAX_TIMEOUT_SECONDS
from .values import MAX_DEPTH

# canonical padded base64 (the unused low bits of the last symbol are zero)
CANONICAL_BASE64 = (
    r"^(?:[A-Za-z0-9+/]{4})*"
    r"(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$"
)

JSON = "application/json"


def _version() -> str:
    try:
        return metadata.version("shard-operator")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
        return "0.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


_ERRORS: dict[str, dict[str, Any]] = {
    "400": _json_response(
        "Malformed JSON, a missing field, a wrong type or a value out of range; nothing changed",
        "BadRequestError",
    ),
    "404": _json_response("This shard does not hold the key; nothing changed", "UnknownKeyError"),
    "413": _json_response("The request body is over the size limit", "PayloadTooLargeError"),
    "503": _json_response(
        "The server is shutting down, or persisting the state failed (it then exits)",
        "UnavailableError",
    ),
}


def _post(
    summary: str,
    description: str,
    request: str,
    ok: dict[str, Any],
    *extra: tuple[str, dict[str, Any]],
    body_required: bool = True,
    operation_id: str,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok, **_ERRORS}
    responses.update(dict(extra))
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "requestBody": {
                "required": body_required,
                "content": {JSON: {"schema": _ref(request)}},
            },
            "responses": dict(sorted(responses.items())),
        }
    }


def _get(
    summary: str, operation_id: str, responses: dict[str, Any], description: str = ""
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "responses": responses,
    }
    if description:
        op["description"] = description
    return {"get": op}


def build_openapi(encoding: KeyEncoding, max_body_bytes: int) -> dict[str, Any]:
    """The document for a server whose keys use ``encoding``."""
    if encoding is KeyEncoding.BASE64:
        segment: dict[str, Any] = {
            "type": "string",
            "pattern": CANONICAL_BASE64,
            "description": "canonical padded base64 of the segment's bytes",
        }
    else:
        segment = {"type": "string", "description": "a key segment as Unicode text (UTF-8)"}
    height = {
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "maximum": MAX_HEIGHT,
        "description": "a height (slot index); JSON booleans are not integers",
    }
    any_value = {
        "description": (
            f"any JSON value, null included (finite numbers, nesting up to {MAX_DEPTH} levels)"
        )
    }
    error_code = {"type": "string"}

    def error(codes: list[str], detail_required: bool = False) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["error", "detail"] if detail_required else ["error"],
            "properties": {
                "error": {**error_code, "enum": codes},
                "detail": {"type": "string", "description": "what exactly is wrong"},
            },
        }

    schemas: dict[str, Any] = {
        "Key": {
            "type": "array",
            "items": segment,
            "description": (
                f"the key as a list of segments, encoded as this shard's keys are "
                f"({encoding.value}); keys are equal when their byte segments are equal"
            ),
        },
        "Height": height,
        "CellRequest": {
            "type": "object",
            "required": ["key", "height"],
            "properties": {"key": _ref("Key"), "height": _ref("Height")},
        },
        "ReadRequest": {
            "type": "object",
            "required": ["key", "height"],
            "properties": {
                "key": _ref("Key"),
                "height": _ref("Height"),
                "timeoutSeconds": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": MAX_TIMEOUT_SECONDS,
                    "description": "give up with 408 after this long; 0 = answer only if "
                    "the read can be answered at once; absent = wait as long as needed",
                },
            },
        },
        "WriteRequest": {
            "type": "object",
            "required": ["key", "height", "value"],
            "properties": {"key": _ref("Key"), "height": _ref("Height"), "value": any_value},
        },
        "BackupRequest": {
            "type": "object",
            "properties": {"key": _ref("Key")},
            "description": "optional key: count only its values; otherwise all keys held",
        },
        "OkResult": {
            "type": "object",
            "required": ["result"],
            "properties": {"result": {"const": "ok"}},
        },
        "ReadResult": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["result", "value"],
                    "properties": {"result": {"const": "ok"}, "value": any_value},
                },
                {
                    "type": "object",
                    "required": ["result"],
                    "properties": {"result": {"const": "absent"}},
                    "not": {"required": ["value"]},
                },
            ]
        },
        "WriteResult": {
            "type": "object",
            "required": ["applied"],
            "properties": {
                "applied": {
                    "type": "boolean",
                    "description": "false when the slot was not reserved (nothing changed)",
                }
            },
        },
        "UnreserveResult": {
            "type": "object",
            "required": ["result", "changed"],
            "properties": {
                "result": {"const": "ok"},
                "changed": {"type": "boolean", "description": "whether the slot was reserved"},
            },
        },
        "AdvanceResult": {
            "type": "object",
            "required": ["result", "watermark"],
            "properties": {"result": {"const": "ok"}, "watermark": _ref("Height")},
        },
        "BackupResult": {
            "type": "object",
            "required": ["result", "values"],
            "properties": {
                "result": {"const": "ok"},
                "values": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "how many slots holding a value are persisted",
                },
            },
        },
        "Slot": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["height", "state", "value"],
                    "properties": {
                        "height": _ref("Height"),
                        "state": {"const": "value"},
                        "value": any_value,
                    },
                },
                {
                    "type": "object",
                    "required": ["height", "state"],
                    "properties": {"height": _ref("Height"), "state": {"const": "reserved"}},
                    "not": {"required": ["value"]},
                },
            ]
        },
        "State": {
            "type": "object",
            "required": ["nodeId", "keyEncoding", "version", "cells"],
            "properties": {
                "nodeId": {"type": "string"},
                "keyEncoding": {"enum": [e.value for e in KeyEncoding]},
                "version": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "count of accepted state changes",
                },
                "cells": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["key", "watermark", "waitingReaders", "slots"],
                        "properties": {
                            "key": _ref("Key"),
                            "watermark": _ref("Height"),
                            "waitingReaders": {"type": "integer", "minimum": 0},
                            "slots": {
                                "type": "array",
                                "items": _ref("Slot"),
                                "description": "non-empty slots in increasing height order",
                            },
                        },
                    },
                },
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"enum": ["ok", "ready", "failing", "not_ready"]},
                "reason": {"type": "string"},
            },
        },
        "BadRequestError": error(["bad_request"], detail_required=True),
        "UnknownKeyError": error(["unknown_key"]),
        "ReserveConflictError": error(["occupied", "reserving_write_under_write_watermark"]),
        "ReadTimeoutError": error(["timeout"]),
        "PayloadTooLargeError": error(["payload_too_large"], detail_required=True),
        "UnavailableError": error(["shutting_down", "persistence_failed"]),
    }

    paths: dict[str, Any] = {
        "/v1/reserve": _post(
            "Reserve the slot at a height for a later write",
            "Refused with 409 `reserving_write_under_write_watermark` if height <= watermark, "
            "or `occupied` if the slot is reserved or holds a value. Durable when answered.",
            "CellRequest",
            _json_response("Reserved", "OkResult"),
            ("409", _json_response("Refused; nothing changed", "ReserveConflictError")),
            operation_id="reserve",
        ),
        "/v1/read": _post(
            "Blocking read",
            "Waits while height > watermark + 1, or while the highest non-empty slot "
            "strictly below the height is reserved; then answers that slot's value, or "
            "`absent` if there is none. A client that disconnects retracts its read.",
            "ReadRequest",
            _json_response("The value below the height, or absent", "ReadResult"),
            ("408", _json_response("timeoutSeconds ran out", "ReadTimeoutError")),
            operation_id="read",
        ),
        "/v1/write": _post(
            "Write a value into a reserved slot",
            "Applies only if the slot at the height is reserved (even below the "
            "watermark); otherwise nothing changes and `applied` is false.",
            "WriteRequest",
            _json_response("Whether the write applied", "WriteResult"),
            operation_id="write",
        ),
        "/v1/unreserve": _post(
            "Empty a reserved slot",
            "A reserved slot becomes empty; any other slot is left alone.",
            "CellRequest",
            _json_response("Done", "UnreserveResult"),
            operation_id="unreserve",
        ),
        "/v1/advance-watermark": _post(
            "Raise the write watermark",
            "watermark = max(watermark, height); waiting readers are re-checked.",
            "CellRequest",
            _json_response("The watermark after the call", "AdvanceResult"),
            operation_id="advanceWatermark",
        ),
        "/v1/backup": _post(
            "Make the state durable and count the values persisted",
            "Every accepted change is already durable when answered; this confirms it "
            "and counts the slots holding a value (for the key, or for every key held).",
            "BackupRequest",
            _json_response("Values persisted", "BackupResult"),
            body_required=False,
            operation_id="backup",
        ),
        "/v1/state": _get(
            "The cells, for debugging",
            "state",
            {
                "200": _json_response("Every cell's watermark and non-empty slots", "State"),
                "503": _ERRORS["503"],
            },
        ),
        "/v1/openapi.json": _get(
            "This document",
            "openapi",
            {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {JSON: {"schema": {"type": "object"}}},
                }
            },
        ),
        "/healthz": _get(
            "Liveness",
            "healthz",
            {
                "200": _json_response("Serving", "Health"),
                "503": _json_response("Persistence failed; the process is stopping", "Health"),
            },
        ),
        "/readyz": _get(
            "Readiness: the state is restored and the server is not stopping",
            "readyz",
            {
                "200": _json_response("Ready", "Health"),
                "503": _json_response("Not ready", "Health"),
            },
        ),
        "/metrics": _get(
            "Prometheus metrics",
            "metrics",
            {
                "200": {
                    "description": "Prometheus text exposition format 0.0.4",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "shard-server",
            "version": _version(),
            "description": (
                "The shard API of Anoma's shard process, served for the key(s) this shard "
                f"holds. Request bodies are JSON, at most {max_body_bytes} bytes. Every "
                "accepted change is persisted before it is answered."
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
