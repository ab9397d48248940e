"""WeChat Pay API v3: RSA-signed requests, signed and AES-GCM encrypted notifications."""

from activities.gateways.plugin import GatewayPlugin, WebhookNeeds

GATEWAY_ID = "wechat_pay"

PLUGIN = GatewayPlugin(
    id=GATEWAY_ID,
    settings="activities.gateways.wechat_pay.settings:WechatPaySettings",
    builder="activities.gateways.wechat_pay.adapter:build",
    demo_flows="activities.gateways.wechat_pay.demo:FLOWS",
    webhook=WebhookNeeds(
        body_format="json", acknowledgement="204, empty body; a rejection is 400 with a JSON code/message"
    ),
    fake="activities.gateways.wechat_pay.fake:FakeWechatPay",
    testkit="activities.gateways.wechat_pay.testkit:Kit",
)
