"""Signed remote commands, the centre's side: queue, WebSocket channel, CLI (issue 9)."""
