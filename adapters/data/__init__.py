"""Historical market data loaders."""
