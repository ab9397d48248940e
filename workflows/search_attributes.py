"""Search attributes that make payments findable in the Temporal UI. Registered by `durapay dev`
and the test fixtures; a production namespace registers them once (see deploy/)."""

from temporalio.common import SearchAttributeKey

PAYMENT_STATUS = SearchAttributeKey.for_keyword("PaymentStatus")
GATEWAY = SearchAttributeKey.for_keyword("Gateway")
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
CURRENCY = SearchAttributeKey.for_keyword("Currency")
AMOUNT_MINOR = SearchAttributeKey.for_int("AmountMinor")

ALL = (PAYMENT_STATUS, GATEWAY, ORDER_ID, CURRENCY, AMOUNT_MINOR)
