"""The GraphQL API over the read models."""
