"""Fake Stripe, WeChat Pay and AliPay servers on 127.0.0.1, speaking each provider's wire protocol
(docs in each module). They are a local-development facility: `durapay dev` and `durapay demo` run
them in-process so every provider's flows work without accounts or the internet (`local.py`), and
the tests drive them with their fault knobs. They never hold real credentials: keys are generated."""
