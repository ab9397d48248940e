"""Payment gateways, one folder per provider (`<id>/`, described by its `PLUGIN`, listed in `plugins.py`), all behind `activities.gateways.base.Gateway`."""
