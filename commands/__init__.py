"""The write side: command handlers, the single-writer sequencer, group commit and the ports it needs."""
