"""Payment gateways, one module per provider, all behind `activities.gateways.base.Gateway`."""
