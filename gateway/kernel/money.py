"""Money as integer minor units of an ISO 4217 currency.

Rules (ARCHITECTURE.md §3): amounts are whole minor units; intermediates are `Decimal`; rounding happens
once, half-up, to the currency's exponent, through `Money.from_decimal`. `float` never appears.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

# Currencies whose minor unit is not 2 digits (ISO 4217 "minor unit" column).
_EXPONENT_OVERRIDES: dict[str, int] = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}

# Active ISO 4217 codes (fund and precious-metal codes without a minor unit are left out on purpose:
# nobody is billed in XAU).
ISO_4217_CODES: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP
    BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR
    FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES
    KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR
    MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
    SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()
)


class CurrencyMismatch(ValueError):
    """Arithmetic between two currencies: always a bug in the caller, never a rounding question."""


class UnknownCurrency(ValueError):
    pass


def normalize_currency(code: str) -> str:
    """Upper-case and validate an ISO 4217 code; raises `UnknownCurrency` otherwise."""
    upper = code.strip().upper()
    if upper not in ISO_4217_CODES:
        raise UnknownCurrency(f"unknown ISO 4217 currency code: {code!r}")
    return upper


def exponent(currency: str) -> int:
    """Number of minor-unit digits of `currency` (JPY 0, USD 2, KWD 3)."""
    return _EXPONENT_OVERRIDES.get(normalize_currency(currency), 2)


def round_minor(amount: Decimal) -> int:
    """Round a Decimal amount *in minor units* half-up to a whole minor unit. The one rounding rule."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An amount in integer minor units of one currency. Immutable; mixed-currency arithmetic raises."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"Money.amount must be an int of minor units, got {type(self.amount).__name__}")
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def from_decimal(cls, major: Decimal | str | int, currency: str) -> Money:
        """Build from an amount in *major* units ("12.345" USD → 1235 cents), rounding half-up once."""
        scaled = Decimal(major).scaleb(exponent(currency))
        return cls(round_minor(scaled), currency)

    @classmethod
    def from_minor_decimal(cls, minor: Decimal, currency: str) -> Money:
        """Build from a Decimal amount already in minor units (e.g. a rated line), rounding half-up once."""
        return cls(round_minor(minor), currency)

    # -- views -------------------------------------------------------------------------------
    @property
    def exponent(self) -> int:
        return exponent(self.currency)

    def to_decimal(self) -> Decimal:
        """The amount in major units, exact (1235 USD cents → Decimal('12.35'))."""
        return Decimal(self.amount).scaleb(-self.exponent)

    def format(self) -> str:
        """Human form with the currency code: '12.35 USD', '1200 JPY'."""
        return f"{self.to_decimal():.{self.exponent}f} {self.currency}"

    def __str__(self) -> str:
        return self.format()

    # -- arithmetic --------------------------------------------------------------------------
    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency} cannot be combined")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        # Only integer factors: a Decimal factor needs an explicit rounding decision (`scale`).
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise TypeError("Money can only be multiplied by an int; use scale() for fractions")
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def scale(self, factor: Decimal) -> Money:
        """Multiply by a Decimal factor and round half-up once (proration, percentages)."""
        return Money(round_minor(Decimal(self.amount) * factor), self.currency)

    def _cmp(self, other: Money) -> tuple[int, int]:
        self._same(other)
        return self.amount, other.amount

    def __lt__(self, other: Money) -> bool:
        a, b = self._cmp(other)
        return a < b

    def __le__(self, other: Money) -> bool:
        a, b = self._cmp(other)
        return a <= b

    def __gt__(self, other: Money) -> bool:
        a, b = self._cmp(other)
        return a > b

    def __ge__(self, other: Money) -> bool:
        a, b = self._cmp(other)
        return a >= b

    def is_zero(self) -> bool:
        return self.amount == 0

    # -- allocation --------------------------------------------------------------------------
    def allocate(self, ratios: Sequence[int]) -> list[Money]:
        """Split into parts proportional to non-negative integer `ratios` without losing a minor unit.

        Remainders go one unit at a time to the parts with the largest fractional share (ties: earlier
        part first), so the parts always sum exactly to `self`.
        """
        if not ratios or any(r < 0 for r in ratios) or sum(ratios) == 0:
            raise ValueError("ratios must be non-negative and not all zero")
        total = sum(ratios)
        sign = -1 if self.amount < 0 else 1
        whole = abs(self.amount)
        shares = [whole * r // total for r in ratios]
        remainders = [whole * r % total for r in ratios]
        left = whole - sum(shares)
        order = sorted(range(len(ratios)), key=lambda i: (-remainders[i], i))
        for i in order[:left]:
            shares[i] += 1
        return [Money(sign * s, self.currency) for s in shares]


def sum_money(items: Iterable[Money], currency: str) -> Money:
    """Sum that is well-defined for an empty iterable (returns zero in `currency`)."""
    total = Money.zero(currency)
    for item in items:
        total = total + item
    return total


def tax_amount(amount: int, percent: Decimal, *, inclusive: bool) -> int:
    """Tax of one line of `amount` minor units at `percent`, rounded once half-up (rule 20).

    Exclusive: `amount × p / 100` is added on top. Inclusive: the amount already contains the tax, which
    is `amount × p / (100 + p)` — one division, so no intermediate is rounded. Negative lines (credits)
    mirror positive ones.
    """
    if percent == 0 or amount == 0:
        return 0
    base = Decimal(amount)
    if inclusive:
        return round_minor(base * percent / (100 + percent))
    return round_minor(base * percent / 100)


def whole_minor_units(exact: str | Decimal | None) -> int | None:
    """An exact per-unit amount in minor units ("2900", "0.06") as an integer, or None when it holds a
    fraction of a minor unit. APIs show both, as Stripe does: `unit_amount` (integer minor units, null
    when fractional) and `unit_amount_decimal` (the exact string)."""
    if exact is None:
        return None
    value = Decimal(exact)
    return int(value) if value == value.to_integral_value() else None
