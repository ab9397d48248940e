"""AliPay Open Platform: RSA2-signed requests and answers, signed form-encoded notifications."""

from activities.gateways.plugin import GatewayPlugin, WebhookNeeds

GATEWAY_ID = "alipay"

PLUGIN = GatewayPlugin(
    id=GATEWAY_ID,
    settings="activities.gateways.alipay.settings:AlipaySettings",
    builder="activities.gateways.alipay.adapter:build",
    demo_flows="activities.gateways.alipay.demo:FLOWS",
    webhook=WebhookNeeds(
        body_format="form", acknowledgement="200 with the text body `success` (`fail` on rejection)"
    ),
    fake="activities.gateways.alipay.fake:FakeAlipay",
    testkit="activities.gateways.alipay.testkit:Kit",
)
