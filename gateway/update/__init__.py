"""Secure remote updates of the gateway (issue 22, gateway side).

- :mod:`gateway.update.bundle`: signed update bundles (format, signing, the hostile-input verifier
  whose one error type is :class:`UpdateRefused`).
- :mod:`gateway.update.install`: A/B slots, the persisted install state machine, automatic
  rollback, recovery after a power cut.
- :mod:`gateway.update.runner`: starting a slot and waiting for READY plus its self-check
  (the process boundary).
- :mod:`gateway.update.cli`: ``compound-gw update ...``.

See docs/updates.md.
"""
