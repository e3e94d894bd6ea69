"""Compatibility APIs: thin adapters that speak other products' protocols over the slices."""
