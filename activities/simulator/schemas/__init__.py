"""The input schemas of real models, as Replicate and fal publish them, and their validation.

``replicate/<owner>--<name>.json`` is the model object Replicate's ``GET /v1/models/{owner}/
{name}`` answers (its ``latest_version.openapi_schema.components.schemas.Input``, enums as
``allOf`` references into ``components.schemas``). ``fal/<endpoint with / as -->.json`` is the
OpenAPI document fal serves per endpoint (``.../openapi.json?endpoint_id=<endpoint>``), its input
under ``components.schemas.<Name>Input``. The README here names the page each one was read from.

A create for one of these models is checked as the real service checks it: Replicate's JSON
Schema validation (``invalid_fields`` of ``required``, ``invalid_type``, ``enum``, ``number_gte``,
``number_lte``) and fal's pydantic validation (``detail`` items with ``loc: ["body", field]``).
Keys the schema does not name are ignored by both services; they are returned by
:meth:`ModelSchema.unknown` so the simulator can log them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

Protocol = Literal["replicate", "fal"]

HERE = Path(__file__).parent
DEFAULT_SECONDS = 5.0
_SECONDS = re.compile(r"\s*(\d+(?:\.\d+)?)\s*s?\s*")
_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list[Any],
    "object": dict[str, Any],
}


def seconds(value: object) -> float | None:
    """A clip length as models spell it (``5``, ``5.0``, ``"5"``, ``"5s"``), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and (match := _SECONDS.fullmatch(value)):
        return float(match[1])
    return None


@dataclass(frozen=True)
class ModelSchema:
    """One model's published input schema and the document it was published in."""

    protocol: Protocol
    model: str
    document: dict[str, Any]
    input: dict[str, Any]
    """The input object schema with every ``allOf`` reference resolved into its property."""

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        properties: dict[str, dict[str, Any]] = self.input.get("properties", {})
        return properties

    @property
    def required(self) -> list[str]:
        required: list[str] = self.input.get("required", [])
        return required

    @property
    def version(self) -> str | None:
        """Replicate's version id of the stored schema, when the page showed it."""
        version = self.document.get("latest_version", {}).get("id")
        return version if isinstance(version, str) else None

    @property
    def makes_video(self) -> bool:
        return "duration" in self.properties or "video" in self.model.rsplit("/", 1)[-1]

    def unknown(self, inputs: dict[str, Any]) -> list[str]:
        """Input keys the model does not take (the real services ignore them silently)."""
        return [key for key in inputs if key not in self.properties]

    def default_seconds(self) -> float | None:
        """The clip length made when no ``duration`` is sent: the schema's default."""
        return seconds(self.properties.get("duration", {}).get("default"))

    # -- Replicate -------------------------------------------------------------------------

    def replicate_errors(self, inputs: dict[str, Any]) -> list[dict[str, str]]:
        """``invalid_fields`` as Replicate answers them; empty when the input is valid.

        Replicate validates with JSON Schema: types are strict (``"5"`` is no integer, ``5.0``
        is), one error per field, the type checked before the enum and the range.
        """
        fields = [
            {"type": "required", "field": "input", "description": f"{key} is required"}
            for key in self.required
            if key not in inputs
        ]
        for key, schema in self.properties.items():
            if key in inputs and (problem := _replicate_problem(key, schema, inputs[key])):
                fields.append(problem)
        return fields

    # -- fal -------------------------------------------------------------------------------

    def fal_errors(self, inputs: dict[str, Any]) -> list[dict[str, Any]]:
        """``detail`` items as fal answers them (its apps are pydantic models); empty if valid."""
        try:
            self._fal_model().model_validate(inputs)
        except ValidationError as error:
            items: list[dict[str, Any]] = json.loads(error.json(include_url=False))
            return [{**item, "loc": ["body", *item["loc"]]} for item in items]
        return []

    def _fal_model(self) -> type[BaseModel]:
        return _fal_model(self.protocol, self.model)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _replicate_problem(key: str, schema: dict[str, Any], value: Any) -> dict[str, str] | None:
    field, given, wanted = f"input.{key}", _json_type(value), schema.get("type")
    if wanted is not None and not (given == wanted or (given == "integer" and wanted == "number")):
        description = f"Invalid type. Expected: {wanted}, given: {given}"
        return {"type": "invalid_type", "field": field, "description": description}
    if "enum" in schema and not any(_json_type(o) == given and o == value for o in schema["enum"]):
        allowed = ", ".join(json.dumps(option) for option in schema["enum"])
        description = f"{key} must be one of the following: {allowed}"
        return {"type": "enum", "field": field, "description": description}
    if isinstance(value, int | float) and not isinstance(value, bool):
        if (low := schema.get("minimum")) is not None and value < low:
            description = f"Must be greater than or equal to {_number(low)}"
            return {"type": "number_gte", "field": field, "description": description}
        if (high := schema.get("maximum")) is not None and value > high:
            description = f"Must be less than or equal to {_number(high)}"
            return {"type": "number_lte", "field": field, "description": description}
    return None


def _annotation(schema: dict[str, Any]) -> Any:
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    base = _JSON_TYPES.get(str(schema.get("type")), Any)
    bounds = {
        name: schema[key]
        for name, key in (("ge", "minimum"), ("le", "maximum"), ("max_length", "maxLength"))
        if key in schema
    }
    return Annotated[base, Field(**bounds)] if bounds else base


@cache
def _fal_model(protocol: Protocol, model: str) -> type[BaseModel]:
    schema = find(protocol, model)
    assert schema is not None
    fields: dict[str, Any] = {}
    for key, prop in schema.properties.items():
        annotation = _annotation(prop)
        if key in schema.required:
            fields[key] = (annotation, ...)
        elif "default" in prop:
            fields[key] = (annotation, prop["default"])
        else:
            fields[key] = (annotation | None, None)
    name = re.sub(r"\W", "_", model)
    built: type[BaseModel] = create_model(name, __config__=ConfigDict(extra="ignore"), **fields)
    return built


def _resolve(prop: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """A property with its ``allOf: [{"$ref": ...}]`` merged in, as a validator reads it."""
    resolved = {key: value for key, value in prop.items() if key != "allOf"}
    for part in prop.get("allOf", []):
        target = part.get("$ref", "").rsplit("/", 1)[-1]
        resolved = {**components.get(target, part), **resolved}
    return resolved


def _input_of(protocol: Protocol, document: dict[str, Any]) -> dict[str, Any]:
    if protocol == "replicate":
        components = document["latest_version"]["openapi_schema"]["components"]["schemas"]
        raw = components["Input"]
    else:
        components = document["components"]["schemas"]
        endpoint = document["info"]["x-fal-metadata"]["endpointId"]
        body = document["paths"][f"/{endpoint}"]["post"]["requestBody"]
        reference = body["content"]["application/json"]["schema"]["$ref"]
        raw = components[reference.rsplit("/", 1)[-1]]
    properties = {key: _resolve(prop, components) for key, prop in raw["properties"].items()}
    return {**raw, "properties": properties}


@cache
def stored(protocol: Protocol) -> dict[str, ModelSchema]:
    """Every stored schema of one protocol, by model id (``owner/name`` or fal endpoint id)."""
    found: dict[str, ModelSchema] = {}
    for path in sorted((HERE / protocol).glob("*.json")):
        document = json.loads(path.read_text())
        model = path.stem.replace("--", "/")
        found[model] = ModelSchema(protocol, model, document, _input_of(protocol, document))
    return found


def find(protocol: Protocol, model: str) -> ModelSchema | None:
    """The stored schema of ``model``, or None: the simulator stays permissive for it."""
    return stored(protocol).get(model)
