"""The bank transfer's demo flow, against the fake bank (activities/gateways/bank_transfer/fake.py):
the payer is shown the instructions, sends the money, and the bank statement import settles it."""

from __future__ import annotations

from activities.gateways.bank_transfer import GATEWAY_ID
from activities.gateways.bank_transfer.fake import FakeBank
from activities.gateways.demo_flow import DemoError, DemoFlow, DemoSteps, Payment
from workflows.money import Amount


async def statement_import(steps: DemoSteps, bank: FakeBank) -> Payment:
    payment = await steps.create_waiting(
        "bank-transfer", "49.99", {"type": "bank_transfer"}, currency="EUR", gateway=GATEWAY_ID
    )
    shown = payment["next_action"]["data"]
    print(
        f"bank transfer: pay {shown['amount']} {shown['currency']} to {shown['beneficiary_name']}, "
        f"IBAN {shown['iban']}, BIC {shown['bic']} ({shown['bank_name']}), "
        f"reference {shown['reference_printed']}, by {payment['next_action']['expires_at']}",
        flush=True,
    )
    # The payer sends the money with the reference (in the demo, at once: wait until the payment's
    # record shows the reference the import looks it up by); the shop imports the day's statement.
    await steps.wait(payment["id"], lambda p: p.get("provider_payment_id") == shown["reference"], 10)
    bank.transfer(Amount.of(shown["amount"], shown["currency"]), shown["reference"])
    statement = await steps.http.get(f"{bank.url}/statement.xml")
    if statement.status_code != 200:
        raise DemoError(f"the fake bank answered {statement.status_code}")
    await steps.post(
        "/v1/bank_transfer/statements",
        f"statement-{payment['id']}",
        {"name": "demo-statement.xml", "content": statement.text},
        (200,),
    )
    return await steps.settled(payment["id"])


FLOWS = (DemoFlow("bank transfer + statement import", "paid captured 49.99", statement_import),)
