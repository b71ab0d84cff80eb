"""Patrol credentials: proving a tap came from a real band (docs/credentials.md)."""
