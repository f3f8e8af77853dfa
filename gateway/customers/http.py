"""Customer (tenant) endpoints under /v1: customers and their members."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers import schemas as s
from gateway.customers.repository import CustomerRepository
from gateway.customers.service import CustomerService
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES
from gateway.web.schemas import changes_of

READ = {"scope": "customers:read"}
WRITE = {"scope": "customers:write"}


def provide_customers(
    session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> CustomerService:
    return CustomerService(CustomerRepository(session), clock)


class CustomerController(Controller):
    path = "/customers"
    tags = ["customers"]
    dependencies = {"customers": Provide(provide_customers, sync_to_thread=False)}

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Create a customer organisation (tenant)")
    async def create(
        self,
        data: JSONBody[s.CustomerCreate],
        customers: NamedDependency[CustomerService],
        principal: NamedDependency[Principal],
    ) -> s.Customer:
        row = await customers.create(
            name=data.name,
            email=data.email,
            currency=data.currency,
            country=data.country,
            tax_ids=[msgspec.structs.asdict(t) for t in data.tax_ids],
            address=msgspec.structs.asdict(data.address) if data.address is not None else None,
            tax_exempt=data.tax_exempt,
            default_role=data.default_role,
            preferred_locale=data.preferred_locale,
            metadata=data.metadata,
            test_clock_id=data.test_clock,
            scope=principal.tenant_id,
        )
        return s.Customer.of(row)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List customers")
    async def list_(
        self,
        customers: NamedDependency[CustomerService],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        email: Annotated[str | None, QueryParameter(name="email", max_length=320)] = None,
        test_clock: Annotated[str | None, QueryParameter(name="test_clock", max_length=40)] = None,
        q: Annotated[
            str | None,
            QueryParameter(
                name="q",
                max_length=200,
                description="Search: a customer id, or part of the name or e-mail (an e-mail domain "
                "works), case-insensitive",
            ),
        ] = None,
    ) -> s.CustomerList:
        result = await customers.list(
            after=page.after,
            limit=page.limit,
            scope=principal.tenant_id,
            email=email,
            test_clock_id=test_clock,
            q=q,
        )
        return s.CustomerList(
            [s.Customer.of(r) for r in result.items], result.next_cursor is not None, result.next_cursor
        )

    @get("/{customer_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a customer")
    async def retrieve(
        self,
        customer_id: FromPath[str],
        customers: NamedDependency[CustomerService],
        principal: NamedDependency[Principal],
    ) -> s.Customer:
        return s.Customer.of(await customers.get(customer_id, scope=principal.tenant_id))

    @patch("/{customer_id:str}", opt=WRITE, responses=ERROR_RESPONSES, summary="Update a customer")
    async def update(
        self,
        customer_id: FromPath[str],
        data: JSONBody[s.CustomerUpdate],
        customers: NamedDependency[CustomerService],
        principal: NamedDependency[Principal],
    ) -> s.Customer:
        changes = s.plain_changes(changes_of(data))
        return s.Customer.of(await customers.update(customer_id, changes, scope=principal.tenant_id))

    @post(
        "/{customer_id:str}/members",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Add a member: the role must be one the plan hands out, and a seat must be free (else 409)",
    )
    async def add_member(
        self,
        customer_id: FromPath[str],
        data: JSONBody[s.MemberCreate],
        member_admission: NamedDependency[Any],
        principal: NamedDependency[Principal],
    ) -> s.Member:
        # `member_admission` (gateway/entitlements/seats.py, wired by the composition root) is the one
        # seat check every path that activates a member goes through; customers sit below the tier.
        membership, user = await member_admission.add_member(
            customer_id, email=data.email, name=data.name, role=data.role, scope=principal.tenant_id
        )
        return s.Member.of(membership, user)

    @get("/{customer_id:str}/members", opt=READ, responses=ERROR_RESPONSES, summary="List members")
    async def list_members(
        self,
        customer_id: FromPath[str],
        customers: NamedDependency[CustomerService],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        include_removed: Annotated[bool, QueryParameter(name="include_removed")] = False,
    ) -> s.MemberList:
        result = await customers.list_members(
            customer_id,
            after=page.after,
            limit=page.limit,
            include_removed=include_removed,
            scope=principal.tenant_id,
        )
        return s.MemberList(
            [s.Member.of(m, u) for m, u in result.items], result.next_cursor is not None, result.next_cursor
        )

    @patch(
        "/{customer_id:str}/members/{member_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Change a member's role",
    )
    async def update_member(
        self,
        customer_id: FromPath[str],
        member_id: FromPath[str],
        data: JSONBody[s.MemberUpdate],
        member_admission: NamedDependency[Any],
        principal: NamedDependency[Principal],
    ) -> s.Member:
        membership, user = await member_admission.change_role(
            customer_id, member_id, data.role, scope=principal.tenant_id
        )
        return s.Member.of(membership, user)

    @delete(
        "/{customer_id:str}/members/{member_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Remove a member",
        status_code=200,
    )
    async def remove_member(
        self,
        customer_id: FromPath[str],
        member_id: FromPath[str],
        customers: NamedDependency[CustomerService],
        principal: NamedDependency[Principal],
    ) -> s.Member:
        await customers.remove_member(customer_id, member_id, scope=principal.tenant_id)
        membership, user = await customers.get_member(customer_id, member_id, scope=principal.tenant_id)
        return s.Member.of(membership, user)


CONTROLLERS = [CustomerController]
