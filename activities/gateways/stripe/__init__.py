"""Stripe: PaymentIntents / Refunds through the official SDK, signed webhooks (`Stripe-Signature`)."""

from activities.gateways.plugin import GatewayPlugin, WebhookNeeds

GATEWAY_ID = "stripe"

PLUGIN = GatewayPlugin(
    id=GATEWAY_ID,
    settings="activities.gateways.stripe.settings:StripeSettings",
    builder="activities.gateways.stripe.adapter:build",
    demo_flows="activities.gateways.stripe.demo:FLOWS",
    webhook=WebhookNeeds(body_format="json", acknowledgement="200, empty body"),
    fake="activities.gateways.stripe.fake:FakeStripe",
    testkit="activities.gateways.stripe.testkit:Kit",
)
