"""Read models built from the event log, and the runner that tracks each projector's position."""
