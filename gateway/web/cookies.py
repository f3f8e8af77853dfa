"""The names of the cookies Tiergate's pages set, in one place: the guard reads the staff cookie on page
routes, and the page packages (gateway/admin, gateway/portal, gateway/webui) set them."""

STAFF_COOKIE = "tg_staff"  # a staff member's console session (gateway/admin)
PORTAL_COOKIE = "tg_portal"  # a customer's portal session (gateway/portal)
LANG_COOKIE = "tg_lang"  # the language a visitor picked on a page (gateway/webui)
VISITOR_COOKIE = "tg_visitor"  # an anonymous visitor's key, for sticky price experiments (gateway/portal)
