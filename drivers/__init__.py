"""Hardware drivers: serial buses, relay boards, cameras, modem, GPIO. No policy here."""
