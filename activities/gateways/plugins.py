"""Every gateway durapay knows, by id. Adding a gateway: its folder under `activities/gateways/<id>/`
exporting `PLUGIN`, and one line here."""

from __future__ import annotations

from activities.gateways import airwallex, alipay, bank_transfer, braintree, mock, paypal, stripe, wechat_pay
from activities.gateways.plugin import GatewayPlugin

PLUGINS: dict[str, GatewayPlugin] = {
    plugin.id: plugin
    for plugin in (
        mock.PLUGIN,
        stripe.PLUGIN,
        wechat_pay.PLUGIN,
        alipay.PLUGIN,
        paypal.PLUGIN,
        braintree.PLUGIN,
        airwallex.PLUGIN,
        bank_transfer.PLUGIN,
    )
}
