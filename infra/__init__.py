"""Adapters to the outside world: settings, PostgreSQL, Kafka, Redis, migrations, local stack."""
