"""The write side: handlers, the single-writer sequencer, group commit, the ports it needs."""
