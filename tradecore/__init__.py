"""The composition root: the `tradecore` command and the wiring of every component."""

__version__ = "0.1.0"
