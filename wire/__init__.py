"""What travels between gateway and centre: envelopes, canonical encoding, signatures. Pure."""
