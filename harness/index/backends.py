"""Importing this module registers the shipped student indexes in :data:`harness.registry.INDEXES`."""

from harness.index import dense, impact, plaid  # noqa: F401
