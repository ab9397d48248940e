"""The composition root: configuration, process entry points and the `durapay` CLI."""
