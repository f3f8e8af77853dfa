from gateway.kernel.errors import Conflict, NotFound


class ProductNotFound(NotFound):
    code = "product_not_found"


class FeatureNotFound(NotFound):
    code = "feature_not_found"


class PlanNotFound(NotFound):
    code = "plan_not_found"


class PlanVersionNotFound(NotFound):
    code = "plan_version_not_found"


class PriceNotFound(NotFound):
    code = "price_not_found"


class KeyAlreadyExists(Conflict):
    code = "key_already_exists"


class CouponNotFound(NotFound):
    code = "coupon_not_found"


class PromotionCodeNotFound(NotFound):
    code = "promotion_code_not_found"


class CustomerNotFound(NotFound):
    code = "customer_not_found"


class CouponAlreadyExists(Conflict):
    code = "coupon_already_exists"


class PromotionCodeAlreadyExists(Conflict):
    code = "promotion_code_already_exists"


class RedemptionRefused(Conflict):
    """A coupon or promotion code that exists but cannot be redeemed here and now: always a 409.

    Each subclass's `code` is one `domain.RefusalReason`; catch this base class to handle them all.
    """

    code = "redemption_refused"
    title = "Coupon cannot be redeemed"


class PromotionCodeInactive(RedemptionRefused):
    code = "promotion_code_inactive"


class PromotionCodeExpired(RedemptionRefused):
    code = "promotion_code_expired"


class PromotionCodeExhausted(RedemptionRefused):
    code = "promotion_code_exhausted"


class CouponInactive(RedemptionRefused):
    code = "coupon_inactive"


class CouponExpired(RedemptionRefused):
    code = "coupon_expired"


class CouponExhausted(RedemptionRefused):
    code = "coupon_exhausted"


class PromotionCodeNotForCustomer(RedemptionRefused):
    code = "promotion_code_not_for_customer"


class NotFirstTimeCustomer(RedemptionRefused):
    code = "not_first_time_customer"


class MinimumAmountNotMet(RedemptionRefused):
    code = "minimum_amount_not_met"


class CouponNotApplicable(RedemptionRefused):
    code = "coupon_not_applicable"


class CouponCurrencyMismatch(RedemptionRefused):
    code = "coupon_currency_mismatch"


REFUSALS: dict[str, type[RedemptionRefused]] = {
    cls.code: cls
    for cls in (
        PromotionCodeInactive,
        PromotionCodeExpired,
        PromotionCodeExhausted,
        CouponInactive,
        CouponExpired,
        CouponExhausted,
        PromotionCodeNotForCustomer,
        NotFirstTimeCustomer,
        MinimumAmountNotMet,
        CouponNotApplicable,
        CouponCurrencyMismatch,
    )
}
