"""Document in the OpenAPI schema every constraint msgspec enforces on a request or response struct.

Litestar's schema for a msgspec Struct keeps a field's own `Meta` constraints but drops those nested in
it: `list[Annotated[str, Meta(max_length=40)]]` documents its items as a bare string, and a metadata
`dict[Key, Value]` loses its key and value limits. The limits are enforced (web/bodies.py converts every
body strictly), so the document should say them: this plugin builds the schema as Litestar does, then
walks msgspec's own type description of each field and fills in the constraints the schema lacks
(`maxLength`, `minLength`, `pattern`, `maxItems`, `maxProperties`, `propertyNames`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import OpenAPIType, Schema

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

mi = msgspec.inspect

_ARRAY_TYPES = (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)
_EMPTY_TYPES = (mi.NoneType,)


class ConstrainedStructSchemaPlugin(StructSchemaPlugin):
    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = mi.type_info(field_definition.type_)
        if isinstance(info, mi.StructType) and schema.properties:
            for field in info.fields:
                prop = schema.properties.get(field.encode_name)
                if isinstance(prop, Schema):
                    fill_constraints(prop, field.type)
        return schema


def _unwrap(t: Any) -> Any:
    while isinstance(t, mi.Metadata):
        t = t.type
    return t


def _kind(schema: Schema) -> set[str]:
    types = schema.type if isinstance(schema.type, list | tuple) else [schema.type]
    return {t.value if isinstance(t, OpenAPIType) else str(t) for t in types if t is not None}


def _set_missing(schema: Schema, **values: Any) -> None:
    for name, value in values.items():
        if value is not None and getattr(schema, name) is None:
            setattr(schema, name, value)


def fill_constraints(schema: Schema, t: Any, *, outer: Schema | None = None) -> None:
    """Copy the constraints of msgspec type `t` onto `schema` where it has none (nor its `outer` union
    wrapper, on which Litestar puts a field's own constraints)."""
    t = _unwrap(t)
    alternatives = [s for s in (schema.one_of or schema.any_of or []) if isinstance(s, Schema)]
    if isinstance(t, mi.UnionType) or alternatives:
        # `X | None` and `X | UnsetType` (msgspec drops UNSET from the type, Litestar keeps a oneOf).
        union = t.types if isinstance(t, mi.UnionType) else (t,)
        members = [_unwrap(m) for m in union if not isinstance(_unwrap(m), _EMPTY_TYPES)]
        if not alternatives:
            if len(members) == 1:
                fill_constraints(schema, members[0], outer=outer)
            return
        for alternative in alternatives:
            for member in members:
                if _matches(alternative, member):
                    fill_constraints(alternative, member, outer=schema)
        return
    already = outer if outer is not None else Schema()
    if isinstance(t, mi.StrType):
        if already.max_length is None:
            _set_missing(schema, max_length=t.max_length, min_length=t.min_length or None)
        if already.pattern is None:
            _set_missing(schema, pattern=t.pattern)
    elif isinstance(t, _ARRAY_TYPES):
        if already.max_items is None:
            _set_missing(schema, max_items=t.max_length, min_items=t.min_length or None)
        if isinstance(schema.items, Schema):
            fill_constraints(schema.items, t.item_type)
    elif isinstance(t, mi.DictType):
        if already.max_properties is None:
            _set_missing(schema, max_properties=t.max_length, min_properties=t.min_length or None)
        key = _unwrap(t.key_type)
        if isinstance(key, mi.StrType) and schema.property_names is None and key.max_length is not None:
            names = Schema(type=OpenAPIType.STRING)
            fill_constraints(names, key)
            schema.property_names = names
        if isinstance(schema.additional_properties, Schema):
            fill_constraints(schema.additional_properties, t.value_type)


def _matches(schema: Schema, t: Any) -> bool:
    kind = _kind(schema)
    if isinstance(t, mi.StrType):
        return "string" in kind
    if isinstance(t, _ARRAY_TYPES):
        return "array" in kind
    if isinstance(t, mi.DictType):
        return "object" in kind
    return False
