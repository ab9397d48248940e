"""Names under which the worker registers activities. The workflow calls them by name so that
`workflows/` never imports the I/O code that implements them."""

AUTHORIZE = "gateway.authorize"
CAPTURE = "gateway.capture"
CANCEL = "gateway.cancel"
LOOKUP = "gateway.lookup"
REFUND = "gateway.refund"
LOOKUP_REFUND = "gateway.lookup_refund"

RESERVE_ORDER = "orders.reserve"
RELEASE_ORDER = "orders.release"
CONFIRM_ORDER = "orders.confirm"

CHECK_FRAUD = "fraud.check"

RECORD_TRANSITION = "store.record_transition"

RECONCILE = "reconcile.run"

PENDING_MERCHANT_EVENTS = "merchant_webhooks.pending"
DELIVER_MERCHANT_EVENT = "merchant_webhooks.deliver"
GIVE_UP_MERCHANT_EVENT = "merchant_webhooks.give_up"
ENSURE_GATEWAY_CUSTOMER = "customers.ensure_gateway_customer"
ATTACH_PAYMENT_METHOD = "customers.attach_payment_method"
DETACH_PAYMENT_METHOD = "customers.detach_payment_method"
