"""The district centre reference service: enrollment, ingest, commands, bulletins."""
