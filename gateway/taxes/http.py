"""Tax-rate endpoints under /v1. The catalog is platform data: tenant-scoped keys may read, not write."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kernel.clock import Clock
from gateway.taxes import schemas as s
from gateway.taxes.service import TaxService
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES
from gateway.web.schemas import changes_of

READ = {"scope": "billing:read"}
WRITE = {"scope": "billing:write"}


def provide_taxes(session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]) -> TaxService:
    return TaxService(session, clock)


class TaxRateController(Controller):
    path = "/tax_rates"
    tags = ["billing"]
    dependencies = {"taxes": Provide(provide_taxes, sync_to_thread=False)}

    @post(
        "/",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Create a tax rate (its percentage is immutable afterwards)",
    )
    async def create(self, data: JSONBody[s.TaxRateCreate], taxes: NamedDependency[TaxService]) -> s.TaxRate:
        row = await taxes.create_rate(
            display_name=data.display_name,
            country=data.country,
            region=data.region,
            percent=data.percent,
            inclusive=data.inclusive,
            tax_type=data.tax_type,
            active=data.active,
        )
        return s.TaxRate.of(row)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List tax rates")
    async def list_(
        self,
        taxes: NamedDependency[TaxService],
        page: NamedDependency[ListParams],
        country: Annotated[str | None, QueryParameter(name="country", pattern="^[A-Za-z]{2}$")] = None,
        active: Annotated[bool | None, QueryParameter(name="active", required=False)] = None,
    ) -> s.TaxRateList:
        result = await taxes.list_rates(after=page.after, limit=page.limit, country=country, active=active)
        return s.TaxRateList(
            [s.TaxRate.of(r) for r in result.items], result.next_cursor is not None, result.next_cursor
        )

    @get("/{rate_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a tax rate")
    async def retrieve(self, rate_id: FromPath[str], taxes: NamedDependency[TaxService]) -> s.TaxRate:
        return s.TaxRate.of(await taxes.get_rate(rate_id))

    @patch(
        "/{rate_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Rename or (de)activate a tax rate",
    )
    async def update(
        self,
        rate_id: FromPath[str],
        data: JSONBody[s.TaxRateUpdate],
        taxes: NamedDependency[TaxService],
    ) -> s.TaxRate:
        return s.TaxRate.of(await taxes.update_rate(rate_id, changes_of(data)))


CONTROLLERS = [TaxRateController]
