"""Public-safety broadcast: zones on Modbus relay boards, remote/scheduled/button triggers.

Pure core in :mod:`gateway.broadcast.plan`; the asyncio controller in
:mod:`gateway.broadcast.controller`; wiring in :mod:`gateway.broadcast.service`. See
docs/broadcast.md.
"""
