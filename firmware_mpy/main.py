# Runs after boot.py on every start.  Everything lives in startup.py (frozen or .mpy);
# this file stays tiny so it can be replaced on the node without a rebuild.
import startup

startup.run()
