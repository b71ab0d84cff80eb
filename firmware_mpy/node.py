# The checkpoint node: OSDP PD + PN532 + tap store + LED/buzzer + RS-485 + watchdog.
#
# One cooperative loop, no threads: step() moves bus bytes through the PD engine,
# scans the NFC reader, stores taps, drives the LED/buzzer and feeds the watchdog.
# Every part that decides anything is sans-IO and tested on its own; this file only
# wires them to pins and the clock.  Usage (main.py):  CheckpointNode(...).run()

import osdp_pd
import reports
import indicator
from tapstore import FLAG_OFFLINE
import clock

REPEAT_SUPPRESS_MS = 3000  # the same card held on the reader is one tap
BAND_READ_TRIES = 2  # an ISO-DEP card that stops answering this often goes out as its UID
SUN_KEPT = 4  # SUN messages of taps not yet delivered, kept in RAM (not in the tap store)

# OSDP LED colour -> (r, g, b) for an RGB LED; a single LED lights for any colour
_RGB = ((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 1), (1, 1, 1))


class LedOut:
    """One LED (any colour = on) or an RGB LED: LedOut(Pin(8, Pin.OUT)) / LedOut(r, g, b)."""

    def __init__(self, r, g=None, b=None, active_low=False):
        self.pins = (r, g, b)
        self.inv = active_low
        self.colour = None

    def show(self, colour):
        if colour == self.colour:
            return
        self.colour = colour
        r, g, b = self.pins
        if g is None:
            bits = (1 if colour else 0, 0, 0)
        else:
            bits = _RGB[colour & 7]
        for p, v in zip(self.pins, bits):
            if p is not None:
                p.value(v ^ 1 if self.inv else v)


def start_updates(root):
    """At start: an ota.Updater when an image is staged or on trial (ota.PENDING), after
    switching slots if due; else None, and ota.py stays unloaded until a transfer."""
    import os
    try:
        os.stat(root.rstrip("/") + "/ota.pending")
    except OSError:
        return None
    import ota
    s = ota.Slots(root)
    up = ota.Updater(s)
    up.booted = s.boot()  # "switched", "trial", "fallback" or "ok"
    print("slot", up.booted, s.state["active"])
    return up


class CheckpointNode:
    """Glue object; also the `app` the PD engine calls back.

    Usage:  n = CheckpointNode(settings, RS485(...), PN532(...), LedOut(...), buzzer_pin,
                               TapStore("/data"), os.urandom, wdt=WDT(timeout=8000)); n.run()
    """

    def __init__(self, settings, bus, nfc, led, buzzer_pin, store, rng, wdt=None,
                 console=None, uptime=None, ota=None, ota_root=None):
        self.settings = settings
        self.bus = bus
        self.nfc = nfc
        self.led = led
        self.buzzer_pin = buzzer_pin
        self.store = store
        self.wdt = wdt
        self.console = console
        self.uptime = uptime or clock.Uptime()
        self.ind = indicator.Indicator()
        self.beeper = indicator.Beeper()
        self._last_uid = None
        self._last_seen = -REPEAT_SUPPRESS_MS
        self._last_rx_us = None
        self._raw_unconfirmed = None  # tap number last sent as osdp_RAW, not yet confirmed
        self._sun = {}  # tap number -> the band's SUN message (card data), see sunread.py
        self._band_failures = 0
        self.reboot_requested = False
        self.ota = ota  # ota.Updater, loaded by start_updates() or at the first transfer
        self.ota_root = ota_root  # where the firmware slots live (None: no updates)
        s = settings
        self.pd = osdp_pd.PeripheralDevice(
            s.address, self, scbk=s.scbk, install_mode=s.install_mode,
            identity=osdp_pd.PDIdentity(vendor=s.values["vendor_code"], serial=s.values["serial"],
                                        firmware=(1, 0, 0)),
            rng=rng)

    # --- PD application callbacks ---------------------------------------------------------

    def on_led(self, records):
        now = self.uptime.ms()
        for r in records:
            self.ind.apply_osdp(r, now)

    def on_buzzer(self, reader, tone, on, off, count):
        self.beeper.command(tone, on, off, count, self.uptime.ms())

    def on_keyset(self, key):
        import binascii
        try:
            self.settings.set("scbk", binascii.hexlify(key).decode())
            self.settings.set("install_mode", False)
            self.settings.save()
        except (OSError, ValueError):
            return False
        self.pd.install_mode = False
        return True

    def on_comset(self, addr, baud):
        return True  # applied in _apply_comset() once the osdp_COM reply is on the wire

    def on_mfg(self, vendor, data):
        ours = self.settings.values["vendor_code"]
        if vendor != ours or data != bytes((reports.MFG_STATUS_QUERY,)):
            return None
        import aes128
        st = self.store
        return osdp_pd.REPLY_MFGREP, reports.status(
            vendor, st.pending_count(), st.delivered, st.next_number, st.boot,
            aes128.backend() == "soft", st.writes)

    def on_file(self, data):
        if self.ota is None:
            if self.ota_root is None:
                return None
            import ota
            self.ota = ota.Updater(ota.Slots(self.ota_root))
        return self.ota.on_file(data)

    def next_report(self, now_ms):
        r = self.store.first_pending()
        if r is None:
            return None
        age, exact = self.store.age_ms(r, now_ms)
        repeat = r.number == self._raw_unconfirmed
        if (exact and age < reports.RAW_MAX_AGE_MS and not (r.flags & FLAG_OFFLINE)
                and not repeat and not self.settings.values["numbered_taps"]):
            self._raw_unconfirmed = r.number
            return osdp_pd.REPLY_RAW, reports.raw_card(self._sun.get(r.number, r.uid)), r.number
        # A RAW the panel may or may not have got goes again as a numbered MFGREP with
        # bit2 set, never as a second anonymous RAW: the gateway can tell it apart.
        flags = ((0 if exact else reports.FLAG_AGE_LOWER_BOUND)
                 | (reports.FLAG_TAPPED_OFFLINE if r.flags & FLAG_OFFLINE else 0)
                 | (reports.FLAG_MAY_REPEAT_RAW if repeat else 0))
        data = reports.numbered_tap(
            self.settings.values["vendor_code"], r.number, max(0, age) // 1000, flags,
            self.store.pending_count() - 1, r.uid)
        return osdp_pd.REPLY_MFGREP, data, r.number

    def report_delivered(self, number):
        if number == self._raw_unconfirmed:
            self._raw_unconfirmed = None
        self._sun.pop(number, None)
        self.store.mark_delivered(number)

    # --- loop -----------------------------------------------------------------------------

    def delivering(self, now_ms):
        """True when a tap taken now would reach the panel at its next poll."""
        pd = self.pd
        return pd.is_online(now_ms) and (pd.sc.active or not pd.require_sc)

    def read_band(self, target):
        """An ISO-DEP card's SUN message (bytes) or None (sunread.py); OSError if it left."""
        import sunread
        return sunread.read(self.nfc, target, self.uptime.ms)

    def on_card(self, uid, now_ms, target=None):
        """A card from the reader; returns the tap number, or None for a repeat (or an
        ISO-DEP card that stopped answering: the next scan reads it again).  A band's SUN
        message is read once per tap (each read raises its counter), never on a repeat."""
        if uid == self._last_uid and now_ms - self._last_seen < REPEAT_SUPPRESS_MS:
            self._last_seen = now_ms
            return None
        data = None
        if target is not None and target.iso_dep():
            try:
                data = self.read_band(target)
                self._band_failures = 0
            except OSError:
                self._band_failures += 1
                if self._band_failures < BAND_READ_TRIES:
                    return None
                self._band_failures = 0
        self._last_uid = uid
        self._last_seen = now_ms
        live = self.delivering(now_ms)
        n = self.store.append(uid, now_ms, offline=not live)
        if data is not None:
            if len(self._sun) >= SUN_KEPT:
                del self._sun[min(self._sun)]
            self._sun[n] = data
        if live:
            self.ind.flash(indicator.TAP_SENT, now_ms)
            self.beeper.beep(100, now_ms)
        else:
            self.ind.flash(indicator.TAP_STORED, now_ms)
            self.beeper.beep(300, now_ms)
        return n

    def _apply_comset(self):
        addr, baud = self.pd.pending_comset
        self.pd.pending_comset = None
        try:
            self.settings.set("address", addr)
            self.settings.set("baud", baud)
            self.settings.save()
        except (OSError, ValueError):
            return
        self.pd.address = addr
        self.bus.set_baud(baud)

    def service_bus(self, now_ms):
        data = self.bus.read()
        if data:
            self._last_rx_us = clock.ticks_us()
            for reply in self.pd.receive(data, now_ms):
                self.bus.send(reply, self._last_rx_us)
            if self.pd.pending_comset is not None:
                self._apply_comset()
            if self.ota is not None and self.pd.sc.active:
                self.ota.slots.confirm()  # a slot on trial came up in Secure Channel
        self.pd.tick(now_ms)

    def update_outputs(self, now_ms):
        if self.delivering(now_ms):
            self.ind.set_local(None, now_ms)
        elif self.store.pending_count():
            self.ind.set_local(indicator.STORED, now_ms)
        elif self.settings.scbk is None and not self.settings.install_mode:
            self.ind.set_local(indicator.UNPROVISIONED, now_ms)
        else:
            self.ind.set_local(indicator.OFFLINE, now_ms)
        self.led.show(self.ind.colour(now_ms))
        if self.buzzer_pin is not None:
            self.buzzer_pin.value(1 if self.beeper.is_on(now_ms) else 0)

    def service_console(self):
        if self.console is None:
            return
        line = self.console.readline()
        if line is None:
            return
        import provision
        reply, action = provision.handle(self.settings, line)
        if reply:
            self.console.write(reply + "\n")
        if action == "reboot":
            self.reboot_requested = True

    def step(self):
        now = self.uptime.ms()
        self.service_bus(now)
        if self.nfc is not None:
            t = self.nfc.poll(now)
            if t is not None:
                self.on_card(t.uid, now, t)
                self.service_bus(self.uptime.ms())  # do not make the panel wait on flash
        self.service_console()
        self.update_outputs(now)
        if self.wdt is not None:
            self.wdt.feed()

    def run(self):
        while not self.reboot_requested:
            self.step()
            clock.sleep_ms(1)
