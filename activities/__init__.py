"""Activities: everything a payment workflow does that touches the world (gateways, store, orders)."""
