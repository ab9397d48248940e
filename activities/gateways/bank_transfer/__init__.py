"""Manual bank transfer: the payer is shown our account and an RF reference, and the payment waits
(days) until an operator or an imported bank statement (camt.053, CSV) confirms the money."""

from activities.gateways.plugin import GatewayPlugin, WebhookNeeds

GATEWAY_ID = "bank_transfer"

PLUGIN = GatewayPlugin(
    id=GATEWAY_ID,
    settings="activities.gateways.bank_transfer.settings:BankTransferSettings",
    builder="activities.gateways.bank_transfer.adapter:build",
    demo_flows="activities.gateways.bank_transfer.demo:FLOWS",
    # No provider posts anything: every delivery to /webhooks/bank_transfer is refused.
    webhook=WebhookNeeds(body_format="json", acknowledgement="none: every delivery is refused (400)"),
    fake="activities.gateways.bank_transfer.fake:FakeBank",
    testkit="activities.gateways.bank_transfer.testkit:Kit",
)
