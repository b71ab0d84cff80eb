"""Compound Gateway: the daemon in every compound's box (journal, services, CLI)."""

__version__ = "0.1.0"
