"""The mock gateway: an in-process provider driven by test tokens, for development, tests and the bench."""

from activities.gateways.plugin import GatewayPlugin, WebhookNeeds

GATEWAY_ID = "mock"

PLUGIN = GatewayPlugin(
    id=GATEWAY_ID,
    settings="activities.gateways.mock.settings:MockSettings",
    builder="activities.gateways.mock.adapter:build",
    demo_flows="activities.gateways.mock.demo:FLOWS",
    webhook=WebhookNeeds(body_format="json", acknowledgement="200, empty body"),
    testkit="activities.gateways.mock.testkit:Kit",
)
