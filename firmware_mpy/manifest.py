# Freeze the checkpoint node firmware into a MicroPython build:
#   make -C ports/rp2 BOARD=RPI_PICO FROZEN_MANIFEST=/path/to/firmware_mpy/manifest.py
# or copy the .py files with mpremote (docs/checkpoint-node.md).
# micropython-lib packages used: none beyond the port's built-ins (json, struct,
# binascii, select, os, time, machine, and cryptolib where the port enables it) --
# the PN532 driver is ours, micropython-lib has none for HSU.

include("$(PORT_DIR)/boards/manifest.py")

module("aes128.py")
module("board.py")
module("clock.py")
module("indicator.py")
module("node.py")
module("osdp_frame.py")
module("osdp_pd.py")
module("osdp_sc.py")
module("ota.py")
module("pn532.py")
module("provision.py")
module("reports.py")
module("rs485.py")
module("settings.py")
module("sun.py")
module("sunread.py")
module("startup.py")
module("tapstore.py")
# boot.py and main.py stay as files on the node's file system so they can be edited.
