"""The HTTP and WebSocket front door: REST commands, auth, live channels, the static web UI."""
