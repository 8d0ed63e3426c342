"""Composition root: configuration from the environment, and the running server."""
