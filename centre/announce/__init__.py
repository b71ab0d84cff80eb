"""The announcement library: what the loudspeakers say (docs/announcements.md)."""
