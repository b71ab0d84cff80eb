# A complete checkpoint node served on the harness's byte pipe (stdin/stdout) so a real
# OSDP control panel (libosdp) can drive it live.  Control lines on the ctl channel:
#   config <address> <scbk-hex> <offline_after_ms>   provision (first line)
#   tap <uid-hex> / untap                            a card in / out of the PN532 field
#   band <uid-hex> <https-url>                       an NTAG 424 DNA band whose NDEF URI is url
#   quit                                             stop (the harness saves /flash)
# Events back on ctl: "ready <boot> <pending> <slot-boot> <slot> <release>", "led <colour>",
# "buz <0|1>", "tap <number>", "ota staged <release>" / "ota refused <why>" /
# "ota confirmed" (firmware images over osdp_FILETRANSFER, firmware_mpy/ota.py).
import asyncio
import binascii
import json

import clock
import hostio
import machine
import node
import pn532
import rs485
import settings
import tapstore

from fake_ntag424 import FakeNtag424, uri_record
from fake_pn532 import FakePN532


class PipeBackend:
    def __init__(self):
        self.buf = b""

    def any(self):
        h = hostio.read()
        if h:
            self.buf += binascii.unhexlify(h)
        return len(self.buf)

    def read(self, n):
        self.any()
        b, self.buf = self.buf[:n], self.buf[n:]
        return b or None

    def write(self, data):
        hostio.write(binascii.hexlify(bytes(data)).decode())
        return len(data)


def rng(n):
    import random
    return bytes(random.getrandbits(8) for _ in range(n))


async def wait_config():
    while True:
        line = hostio.ctl_read()
        if line.startswith("config"):
            return line.split()
        await asyncio.sleep_ms(5)


FLASH = getattr(hostio, "FLASH", "/flash")  # CPython runs give a host directory


async def main():
    _, addr, key, offline_ms = await wait_config()
    s = settings.Settings.load(FLASH + "/settings.json")
    s.set("address", int(addr))
    s.set("baud", 115200)
    s.set("scbk", key)
    s.save()
    bus = rs485.RS485(machine.UART(1, 115200, backend=PipeBackend()),
                      machine.Pin(3, machine.Pin.OUT), 115200)
    nfc_be = machine.BytesBackend()
    card = FakePN532(nfc_be)
    nfc = pn532.PN532(machine.UART(0, 115200, backend=nfc_be))
    nfc.begin(clock.Uptime().ms)
    pins = (machine.Pin(5, machine.Pin.OUT), machine.Pin(6, machine.Pin.OUT),
            machine.Pin(7, machine.Pin.OUT))
    buz = machine.Pin(10, machine.Pin.OUT)
    store = tapstore.TapStore(FLASH + "/data")
    up = node.start_updates(FLASH)  # as startup.py: ota.py loaded only when an image waits
    booted = "ok" if up is None else up.booted
    try:
        with open(FLASH + "/ota.json") as f:
            st = json.load(f)
    except OSError:
        st = {"active": "a", "release": 0, "trial": 0}
    n = node.CheckpointNode(s, bus, nfc, node.LedOut(*pins), buz, store, rng,
                            wdt=machine.WDT(timeout=8000), ota=up, ota_root=FLASH)
    n.pd.offline_after_ms = int(offline_ms)
    hostio.ctl_write("ready %d %d %s %s %d" % (store.boot, store.pending_count(), booted,
                                              st["active"], st["release"]))
    seen = (0, None, st["trial"])
    led = buzzing = None
    taps = store.next_number
    while True:
        line = hostio.ctl_read()
        if line.startswith("tap "):
            card.uid = binascii.unhexlify(line.split()[1])
            card.sel_res, card.apdu = 0x00, None
        elif line.startswith("band "):
            _, uid, url = line.split()
            card.uid = binascii.unhexlify(uid)
            card.sel_res, card.apdu = 0x20, FakeNtag424(uri_record(url)).exchange
        elif line == "untap":
            card.uid = None
        elif line == "quit":
            return
        n.step()
        if store.next_number != taps:
            taps = store.next_number
            hostio.ctl_write("tap %d" % (taps - 1))
        if n.led.colour != led:
            led = n.led.colour
            hostio.ctl_write("led %d" % led)
        if buz.value() != buzzing:
            buzzing = buz.value()
            hostio.ctl_write("buz %d" % buzzing)
        up = n.ota
        now = seen if up is None else (up.staged, up.refused, up.slots.state["trial"])
        if now != seen:
            if now[0] != seen[0]:
                hostio.ctl_write("ota staged %d" % now[0])
            if now[1] is not None and now[1] != seen[1]:
                hostio.ctl_write("ota refused %s" % now[1])
            if seen[2] and not now[2]:
                hostio.ctl_write("ota confirmed")
            seen = now
        await asyncio.sleep_ms(1)


await main()
