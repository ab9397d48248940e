"""Braintree: transactions and the vault through the official (synchronous) SDK, run in a bounded
thread pool; webhooks as the `bt_signature` / `bt_payload` form, verified by the SDK."""

from activities.gateways.plugin import GatewayPlugin, WebhookNeeds

GATEWAY_ID = "braintree"

PLUGIN = GatewayPlugin(
    id=GATEWAY_ID,
    settings="activities.gateways.braintree.settings:BraintreeSettings",
    builder="activities.gateways.braintree.adapter:build",
    demo_flows="activities.gateways.braintree.demo:FLOWS",
    webhook=WebhookNeeds(body_format="form", acknowledgement="200, empty body"),
    fake="activities.gateways.braintree.fake:FakeBraintree",
    testkit="activities.gateways.braintree.testkit:Kit",
)
