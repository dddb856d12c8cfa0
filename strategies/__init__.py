"""Strategy plug-ins: built-in presets and the public strategy API."""
