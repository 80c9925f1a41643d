"""WebSocket channels at /ws (docs/websocket.md): channel names, connections, the hub."""
