"""Running the fake provider servers for `durapay dev` and `durapay demo` (`local.py`). The fakes
themselves live with their gateways (`activities/gateways/<id>/fake.py`, named by each plugin's
`fake`): servers on 127.0.0.1 speaking each provider's wire protocol, also driven by the tests with
their fault knobs. They never hold real credentials: keys are generated."""
