"""The GraphQL object types, one resource per module."""
