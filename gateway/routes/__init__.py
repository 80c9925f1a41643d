"""One router per resource: auth, orders, accounts, instruments, the event log."""
