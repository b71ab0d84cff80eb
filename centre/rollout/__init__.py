"""Rollouts of signed gateway releases from the centre (issue 22): see docs/updates.md."""
