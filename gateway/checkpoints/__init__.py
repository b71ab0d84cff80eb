"""Patrol checkpoints: OSDP reader buses, the durable tap path, reader health, CLI.

    from gateway.checkpoints.service import daemon_factory      # the daemon's ServiceFactory
    from gateway.checkpoints.cli import add_cli                 # ``reader pair``, ``readers``

See docs/checkpoints.md for wiring, pairing and what the LED colours mean.
"""
