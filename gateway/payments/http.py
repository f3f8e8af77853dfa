"""Payments endpoints under /v1: provider accounts (platform), payment methods and setup sessions,
paying an invoice, refunds, the payments list, and the providers' inbound webhooks.

Paying and refunding own their transactions (claim, provider call outside any transaction, apply), so
those handlers take no request unit of work (`session`)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import UNSET
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing import schemas as billing_schemas
from gateway.billing.wiring import billing_services
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import ValidationFailed
from gateway.payments import schemas as s
from gateway.payments.methods import MethodService
from gateway.payments.port import MethodType
from gateway.payments.runtime import PaymentsRuntime
from gateway.payments.service import PaymentNotFound, PaymentService
from gateway.payments.webhooks import receive
from gateway.web.deps import ListParams, request_actor
from gateway.web.problems import ERROR_RESPONSES
from gateway.web.timestamps import parse_timestamp

READ = {"scope": "payments:read"}
WRITE = {"scope": "payments:write"}


def provide_payments(
    state: State, session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> PaymentService:
    runtime: PaymentsRuntime = state.payments
    return PaymentService(session, clock, runtime.registry(), runtime.billing_config, runtime.settings)


DEPENDENCIES = {"payments": Provide(provide_payments, sync_to_thread=False)}


class ProviderAccountController(Controller):
    path = "/payment_provider_accounts"
    tags = ["payments"]
    dependencies = DEPENDENCIES

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Add a payment provider account")
    async def create(
        self, data: JSONBody[s.AccountCreate], payments: NamedDependency[PaymentService]
    ) -> s.Account:
        account = await payments.create_account(
            kind=data.kind, name=data.name, credentials=dict(data.credentials), is_default=data.is_default
        )
        return s.Account.of(account)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List payment provider accounts")
    async def list_(
        self, payments: NamedDependency[PaymentService], page: NamedDependency[ListParams]
    ) -> s.AccountList:
        result = await payments.list_accounts(after=page.after, limit=page.limit)
        return s.AccountList(
            [s.Account.of(r) for r in result.items], result.next_cursor is not None, result.next_cursor
        )

    @get("/{account_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a provider account")
    async def retrieve(
        self, account_id: FromPath[str], payments: NamedDependency[PaymentService]
    ) -> s.Account:
        return s.Account.of(await payments.get_account(account_id))


class CustomerPaymentMethodController(Controller):
    path = "/customers/{customer_id:str}"
    tags = ["payments"]
    dependencies = DEPENDENCIES

    @get("/payment_methods", opt=READ, responses=ERROR_RESPONSES, summary="The customer's payment methods")
    async def list_(
        self,
        customer_id: FromPath[str],
        payments: NamedDependency[PaymentService],
        principal: NamedDependency[Principal],
        include_detached: Annotated[bool, QueryParameter(name="include_detached")] = False,
    ) -> s.PaymentMethodList:
        customer = await payments.billing.customers.get(customer_id, scope=principal.tenant_id)
        rows = await MethodService(payments).list(customer, include_detached=include_detached)
        return s.PaymentMethodList([s.PaymentMethod.of(r) for r in rows])

    @get(
        "/payment_methods/{payment_method_id:str}",
        opt=READ,
        responses=ERROR_RESPONSES,
        summary="Retrieve a payment method",
    )
    async def retrieve(
        self,
        customer_id: FromPath[str],
        payment_method_id: FromPath[str],
        payments: NamedDependency[PaymentService],
        principal: NamedDependency[Principal],
    ) -> s.PaymentMethod:
        customer = await payments.billing.customers.get(customer_id, scope=principal.tenant_id)
        return s.PaymentMethod.of(await MethodService(payments).get(customer, payment_method_id))

    @patch(
        "/payment_methods/{payment_method_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Move a payment method in the fallback order (priority 0 = the default)",
    )
    async def update(
        self,
        customer_id: FromPath[str],
        payment_method_id: FromPath[str],
        data: JSONBody[s.PaymentMethodUpdate],
        payments: NamedDependency[PaymentService],
        principal: NamedDependency[Principal],
    ) -> s.PaymentMethod:
        customer = await payments.billing.customers.get(customer_id, scope=principal.tenant_id)
        methods = MethodService(payments)
        if data.priority is UNSET:
            return s.PaymentMethod.of(await methods.usable(customer, payment_method_id))
        return s.PaymentMethod.of(await methods.set_priority(customer, payment_method_id, data.priority))

    @post(
        "/payment_methods/{payment_method_id:str}/default",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Make a payment method the customer's default",
    )
    async def make_default(
        self,
        customer_id: FromPath[str],
        payment_method_id: FromPath[str],
        payments: NamedDependency[PaymentService],
        principal: NamedDependency[Principal],
    ) -> s.PaymentMethod:
        customer = await payments.billing.customers.get(customer_id, scope=principal.tenant_id)
        return s.PaymentMethod.of(await MethodService(payments).set_default(customer, payment_method_id))

    @delete(
        "/payment_methods/{payment_method_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Detach a payment method (at the provider too)",
    )
    async def detach(
        self,
        customer_id: FromPath[str],
        payment_method_id: FromPath[str],
        state: State,
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> s.PaymentMethod:
        # No request transaction: the provider is called with none open (MethodCalls).
        runtime: PaymentsRuntime = state.payments
        method = await runtime.method_calls(actor=request_actor(request)).detach(
            customer_id, payment_method_id, scope=principal.tenant_id
        )
        return s.PaymentMethod.of(method)

    @post(
        "/setup_sessions",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="A page where the customer saves a payment method (it arrives by webhook)",
    )
    async def setup_session(
        self,
        customer_id: FromPath[str],
        data: JSONBody[s.SetupSessionCreate],
        state: State,
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> s.SetupSession:
        runtime: PaymentsRuntime = state.payments
        record = await runtime.method_calls(actor=request_actor(request)).start_setup(
            customer_id,
            scope=principal.tenant_id,
            return_url=data.return_url,
            method_types=tuple(MethodType(t) for t in dict.fromkeys(data.method_types)),
        )
        return s.SetupSession.of(record)


class InvoicePaymentController(Controller):
    path = "/invoices/{invoice_id:str}"
    tags = ["payments"]

    @post(
        "/pay",
        opt={"scope": "billing:write"},
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Charge the invoice now (a chosen method, else the default), or record it paid elsewhere",
    )
    async def pay(
        self,
        invoice_id: FromPath[str],
        data: JSONBody[s.InvoicePay],
        state: State,
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> billing_schemas.Invoice:
        runtime: PaymentsRuntime = state.payments
        actor = request_actor(request)
        if data.paid_out_of_band and data.payment_method is not None:
            raise ValidationFailed("either a payment method or paid_out_of_band", field="payment_method")
        if not data.paid_out_of_band:
            await runtime.collector(actor=actor).collect(
                invoice_id,
                scope=principal.tenant_id,
                method_id=data.payment_method,
                off_session=data.off_session,
                return_url=data.return_url,
            )
        async with runtime.db.unit_of_work(actor=actor) as session:
            billing = billing_services(session, clock, runtime.billing_config)
            invoice = await billing.invoices.get(invoice_id, scope=principal.tenant_id, for_update=True)
            if data.paid_out_of_band:
                await billing.invoices.pay(
                    invoice, await billing.subscriptions.now_for(invoice.test_clock_id)
                )
            return billing_schemas.Invoice.of(invoice, await billing.invoices.lines(invoice))


class PaymentController(Controller):
    path = "/payments"
    tags = ["payments"]
    dependencies = DEPENDENCIES

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List payments")
    async def list_(
        self,
        payments: NamedDependency[PaymentService],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        customer: Annotated[str | None, QueryParameter(name="customer", max_length=40)] = None,
        invoice: Annotated[str | None, QueryParameter(name="invoice", max_length=40)] = None,
        status: Annotated[str | None, QueryParameter(name="status", max_length=30)] = None,
        created_gte: Annotated[str | None, QueryParameter(name="created_gte", max_length=40)] = None,
        created_lt: Annotated[str | None, QueryParameter(name="created_lt", max_length=40)] = None,
    ) -> s.PaymentList:
        from gateway.kernel.pagination import Page

        rows = await payments.repo.list_payments(
            after=page.after,
            limit=page.limit,
            scope=principal.tenant_id,
            customer_id=customer,
            invoice_id=invoice,
            status=status,
            created_gte=parse_timestamp(created_gte, "created_gte"),
            created_lt=parse_timestamp(created_lt, "created_lt"),
        )
        result = Page.from_overfetch(rows, page.limit)
        return s.PaymentList(
            [s.Payment.of(r) for r in result.items], result.next_cursor is not None, result.next_cursor
        )

    @get("/{payment_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a payment")
    async def retrieve(
        self,
        payment_id: FromPath[str],
        payments: NamedDependency[PaymentService],
        principal: NamedDependency[Principal],
    ) -> s.Payment:
        row = await payments.repo.get_payment(payment_id, scope=principal.tenant_id)
        if row is None:
            raise PaymentNotFound(f"no payment {payment_id!r}")
        return s.Payment.of(row)

    @post(
        "/{payment_id:str}/refund",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Refund all or part of a payment (with its credit note)",
    )
    async def refund(
        self,
        payment_id: FromPath[str],
        data: JSONBody[s.RefundCreate],
        state: State,
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> s.Refund:
        runtime: PaymentsRuntime = state.payments
        row = await runtime.refunds(actor=request_actor(request)).refund(
            payment_id, amount=data.amount, reason=data.reason, scope=principal.tenant_id
        )
        return s.Refund.of(row)


class ProviderWebhookController(Controller):
    path = "/payment_providers/{account_id:str}"
    tags = ["payments"]

    @post(
        "/webhooks",
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="A payment provider's webhook (signature verified by the provider's own scheme)",
    )
    async def webhook(
        self, account_id: FromPath[str], state: State, request: Request[Any, Any, Any]
    ) -> s.WebhookAck:
        runtime: PaymentsRuntime = state.payments
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        record, new = await receive(runtime.db, runtime.clock, runtime.registry(), account_id, body, headers)
        return s.WebhookAck(received=True, duplicate=record is not None and not new, ignored=record is None)


CONTROLLERS = [
    ProviderAccountController,
    CustomerPaymentMethodController,
    InvoicePaymentController,
    PaymentController,
    ProviderWebhookController,
]
