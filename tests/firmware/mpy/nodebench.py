# A whole checkpoint node on shim hardware, for tests: bus and PN532 on in-memory
# UARTs, pins that record, a clock the test moves, flash under /flash.
import machine
import node
import pn532
import rs485
import settings
import tapstore

from fake_pn532 import FakePN532
from minicp import MiniCP

KEY = bytes(range(0x60, 0x70))


class FakeUptime:
    def __init__(self, t=0):
        self.t = t

    def ms(self):
        return self.t


def rng(n):
    return bytes((0x11 * (i + 1)) & 0xFF for i in range(n))


def provision(path="/flash/settings.json", address=7, baud=115200):
    s = settings.Settings.load(path)
    import binascii
    s.set("address", address)
    s.set("baud", baud)
    s.set("scbk", binascii.hexlify(KEY).decode())
    s.save()


class Bench:
    def __init__(self, t0=0):
        self.settings = settings.Settings.load("/flash/settings.json")
        self.bus_be = machine.BytesBackend()
        self.nfc_be = machine.BytesBackend()
        self.card = FakePN532(self.nfc_be)
        self.de = machine.Pin(3, machine.Pin.OUT)
        self.pins = (machine.Pin(5, machine.Pin.OUT), machine.Pin(6, machine.Pin.OUT),
                     machine.Pin(7, machine.Pin.OUT))
        self.buzzer = machine.Pin(10, machine.Pin.OUT)
        self.wdt = machine.WDT(timeout=8000)
        self.up = FakeUptime(t0)
        bus = rs485.RS485(machine.UART(1, self.settings.baud, backend=self.bus_be), self.de,
                          self.settings.baud)
        nfc = pn532.PN532(machine.UART(0, 115200, backend=self.nfc_be))
        self.store = tapstore.TapStore("/flash/data")
        self.node = node.CheckpointNode(self.settings, bus, nfc, node.LedOut(*self.pins),
                                        self.buzzer, self.store, rng, wdt=self.wdt,
                                        uptime=self.up)
        self.cp = MiniCP(self.node.pd, self.settings.address, KEY, transport=self.exchange)

    def run(self, ms, step=5):
        end = self.up.t + ms
        while self.up.t < end:
            self.up.t += step
            self.node.step()

    def exchange(self, raw):
        self.up.t += 10
        self.cp.now = self.up.t
        self.bus_be.sent = bytearray()
        self.bus_be.push(raw)
        self.node.step()
        out = bytes(self.bus_be.sent)
        return out or None

    def tap(self, uid, hold_ms=300):
        self.card.uid = uid
        self.run(hold_ms)
        self.card.uid = None
        self.run(50)

    def led(self):
        return self.node.led.colour
