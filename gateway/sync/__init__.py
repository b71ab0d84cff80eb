"""Sync with the district centre: provisioning (enrollment, keys, pins) and the uploader.

result = await provision("https://centre:8443", token, data_dir=d, gateway_id="gw-01",
                         compound="Rose Garden", ca_fingerprint="sha256:...")
services = build_services(cfg, journal, clock, board)      # the Uploader, once provisioned
"""
