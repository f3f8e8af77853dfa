from gateway.kernel.errors import Conflict, NotFound


class ProductNotFound(NotFound):
    code = "product_not_found"


class FeatureNotFound(NotFound):
    code = "feature_not_found"


class PlanNotFound(NotFound):
    code = "plan_not_found"


class PriceNotFound(NotFound):
    code = "price_not_found"


class KeyAlreadyExists(Conflict):
    code = "key_already_exists"
