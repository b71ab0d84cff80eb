# RAM footprint of a running node, as MicroPython's gc counts it (32-bit build, like
# the ESP32-C3 and RP2040): the firmware's compiled .mpy modules once imported, plus
# the objects of a complete node that has done a Secure Channel handshake.
import gc
import sys

FIRMWARE = ("aes128", "osdp_frame", "osdp_sc", "osdp_pd", "tapstore", "pn532", "rs485",
            "indicator", "settings", "provision", "reports", "clock", "node", "board",
            "sunread")  # sunread: loaded at the first NTAG 424 DNA band tap
# Not ota: loaded only while a firmware image is on its way, staged or on trial (see ota.py;
# docs/checkpoint-node.md "Budgets" gives the heap with it).

gc.collect()
m0 = gc.mem_alloc()
for name in FIRMWARE:
    __import__(name)
gc.collect()
m1 = gc.mem_alloc()
import nodebench  # noqa: E402  -- test helpers (shim, fake PN532, mini CP)

gc.collect()
m2 = gc.mem_alloc()
nodebench.provision()
b = nodebench.Bench()
b.cp.cmd(0x61, b"\x00")
b.cp.handshake()
b.cp.cmd(0x60)
# drop what only the test bench records (pin histories, UART logs), not node state
for p in (b.de, b.buzzer) + b.pins:
    p.history = []
b.node.bus.uart.tx_log = []
b.node.nfc.uart.tx_log = []
b.nfc_be.sent = bytearray()
b.bus_be.sent = bytearray()
b.card.commands = []
gc.collect()
m3 = gc.mem_alloc()
print("OTA_LOADED", "ota" in sys.modules)  # a node in steady state does not load it
print("MPY_LOADED", all(sys.modules[n].__file__.endswith(".mpy") for n in FIRMWARE))
print("IMPORT_BYTES", m1 - m0)
print("NODE_BYTES", m3 - m2)
print("RAM_BYTES", (m1 - m0) + (m3 - m2))
import aes128  # noqa: E402

print("AES_BACKEND", aes128.backend())
