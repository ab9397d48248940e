"""Airwallex: Payment Intents and Refunds over REST (bearer token from the login endpoint), signed
webhooks (`x-timestamp` + `x-signature`)."""

from activities.gateways.plugin import GatewayPlugin, WebhookNeeds

GATEWAY_ID = "airwallex"

PLUGIN = GatewayPlugin(
    id=GATEWAY_ID,
    settings="activities.gateways.airwallex.settings:AirwallexSettings",
    builder="activities.gateways.airwallex.adapter:build",
    demo_flows="activities.gateways.airwallex.demo:FLOWS",
    webhook=WebhookNeeds(body_format="json", acknowledgement="200, empty body"),
    fake="activities.gateways.airwallex.fake:FakeAirwallex",
    testkit="activities.gateways.airwallex.testkit:Kit",
)
