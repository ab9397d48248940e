"""Search attributes that make payments findable in the Temporal UI and CLI. Registered by `durapay
dev` and the test fixtures; a production namespace registers them once (see deploy/README.md).

All but `ProviderPaymentId` are set when the payment starts; `ProviderPaymentId` is upserted by the
workflow once the provider has named the payment (`temporal workflow list --query
"ProviderPaymentId='pi_...'"`)."""

from temporalio.common import SearchAttributeKey

PAYMENT_STATUS = SearchAttributeKey.for_keyword("PaymentStatus")
GATEWAY = SearchAttributeKey.for_keyword("Gateway")
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
CURRENCY = SearchAttributeKey.for_keyword("Currency")
AMOUNT_MINOR = SearchAttributeKey.for_int("AmountMinor")
MERCHANT_ID = SearchAttributeKey.for_keyword("MerchantId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
PROVIDER_PAYMENT_ID = SearchAttributeKey.for_keyword("ProviderPaymentId")

ALL = (
    PAYMENT_STATUS,
    GATEWAY,
    ORDER_ID,
    CURRENCY,
    AMOUNT_MINOR,
    MERCHANT_ID,
    CUSTOMER_ID,
    PROVIDER_PAYMENT_ID,
)
