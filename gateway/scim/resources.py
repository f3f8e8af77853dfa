"""The SCIM resources Tiergate serves, as scim2-models classes, and the discovery documents built from them.

The User schema is deliberately the subset Tiergate keeps (userName = the member's e-mail, name,
displayName, emails, active, externalId, groups read-only): /Schemas publishes exactly what is stored, so
an IdP (and scim2-tester) maps only attributes that round-trip. Attributes outside it are ignored on
input (RFC 7644 leaves unsupported attributes to the provider), never an error.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ComplexAttribute,
    Email,
    ETag,
    Filter,
    GroupMember,
    GroupMembership,
    Mutability,
    Name,
    Pagination,
    Patch,
    Required,
    Resource,
    ResourceType,
    Schema,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
)

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
MAX_RESULTS = 200
DEFAULT_PAGE_SIZE = 100


class User(Resource[Any]):
    """A member of the tenant, seen by the IdP."""

    __schema__ = URN(USER_SCHEMA)

    user_name: Annotated[str | None, Uniqueness.server, Required.true] = None
    """The member's e-mail address: it identifies the Tiergate user (SSO signs in by it)."""

    name: Name | None = None
    """The components of the user's real name."""

    Name: ClassVar[type[ComplexAttribute]] = Name

    display_name: str | None = None
    """The name of the User, suitable for display to end-users."""

    active: bool | None = None
    """False: the membership is removed (the seat is freed); true again restores it, seats permitting."""

    emails: list[Email] | None = None
    """E-mail addresses for the user."""

    Emails: ClassVar[type[ComplexAttribute]] = Email

    groups: Annotated[list[GroupMembership] | None, Mutability.read_only] = None
    """The groups the user is in (read-only: change a Group's members instead)."""

    Groups: ClassVar[type[ComplexAttribute]] = GroupMembership


class Group(Resource[Any]):
    """A set of members; a group whose displayName names a role gives its members that role."""

    __schema__ = URN(GROUP_SCHEMA)

    display_name: Annotated[str | None, Required.true] = None
    """A human-readable name for the Group; "Admins" or "admin" stands for the role admin."""

    members: list[GroupMember] | None = None
    """The Users in the Group (nested groups are not supported)."""

    Members: ClassVar[type[ComplexAttribute]] = GroupMember


MODELS: tuple[type[Resource[Any]], ...] = (User, Group)

SERVICE_PROVIDER_CONFIG = ServiceProviderConfig(
    documentation_uri=None,
    patch=Patch(supported=True),
    bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
    filter=Filter(supported=True, max_results=MAX_RESULTS),
    change_password=ChangePassword(supported=False),
    sort=Sort(supported=False),
    etag=ETag(supported=False),
    pagination=Pagination(
        index=True, cursor=False, default_page_size=DEFAULT_PAGE_SIZE, max_page_size=MAX_RESULTS
    ),
    authentication_schemes=[
        AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken,
            name="Tiergate SCIM token",
            description="A per-tenant bearer token from POST /v1/customers/{id}/scim_tokens",
            primary=True,
        )
    ],
)


def _schema(model: type[Resource[Any]], name: str, description: str) -> Schema:
    schema = model.to_schema()
    schema.name = name
    schema.description = description
    return schema


SCHEMAS: tuple[Schema, ...] = (
    _schema(User, "User", "A member of the tenant"),
    _schema(Group, "Group", "A group of members; a role group gives its members a role"),
)

# Validated from the wire form (pydantic aliases), as a client would read them.
RESOURCE_TYPES: tuple[ResourceType, ...] = tuple(
    ResourceType.model_validate(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": name,
            "name": name,
            "description": description,
            "endpoint": endpoint,
            "schema": schema,
        }
    )
    for name, description, endpoint, schema in (
        ("User", "Members", "/Users", USER_SCHEMA),
        ("Group", "Groups and role groups", "/Groups", GROUP_SCHEMA),
    )
)
ENDPOINTS = {"Users": User, "Groups": Group}
