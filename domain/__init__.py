"""Tradecore's pure domain: values, instruments, commands, events, book and Exchange."""
