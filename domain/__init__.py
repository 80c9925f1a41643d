"""Tradecore's pure domain: values, instruments, commands, events, book and Exchange."""

from domain._native import guard as _guard

_guard()
