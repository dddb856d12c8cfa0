"""Example configurations, shipped as package data (`ballast demo` runs demo.toml)."""
