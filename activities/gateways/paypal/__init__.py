"""PayPal: REST v2 Orders / Payments through httpx (OAuth2 client credentials, `PayPal-Request-Id`),
the payer's approval as a redirect, webhooks verified by PayPal (`verify-webhook-signature`)."""

from activities.gateways.plugin import GatewayPlugin, WebhookNeeds

GATEWAY_ID = "paypal"

PLUGIN = GatewayPlugin(
    id=GATEWAY_ID,
    settings="activities.gateways.paypal.settings:PayPalSettings",
    builder="activities.gateways.paypal.adapter:build",
    demo_flows="activities.gateways.paypal.demo:FLOWS",
    webhook=WebhookNeeds(body_format="json", acknowledgement="any 2xx, empty body"),
    fake="activities.gateways.paypal.fake:FakePayPal",
    testkit="activities.gateways.paypal.testkit:Kit",
)
