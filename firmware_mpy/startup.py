# Node start-up: builds the hardware objects from board.py and settings.json and runs
# the loop; a crash is logged (bounded file) and the board restarts -- the watchdog
# covers hangs.  main.py is just `import startup; startup.run()`.
import gc
import sys

import machine

import board
import clock

SETTINGS_PATH = "/settings.json"
DATA_DIR = "/data"
WDT_TIMEOUT_MS = 8000  # RP2040 maximum is 8388 ms
BOOT_WINDOW_MS = 3000  # Ctrl-C in this window stops before the watchdog starts
ERROR_LOG = "/error.log"
ERROR_LOG_MAX = 4096


class Console:
    """Non-blocking line reader on the USB console (sys.stdin): provisioning input.

    readline() never blocks and never spins: it reads at most MAX_READ characters per
    call, and a read that returns nothing (stdin at EOF: a closed USB CDC port, a host
    that hung up) closes the console for good, as poll() would report it readable forever.
    The stream and poller are injectable for tests: Console(stream, poller).
    """

    MAX_LINE = 120
    MAX_READ = 64  # characters per call: a flood of input cannot starve the node's loop

    def __init__(self, stream=None, poller=None):
        self._in = stream if stream is not None else sys.stdin
        if poller is None:
            import select
            poller = select.poll()
            poller.register(self._in, select.POLLIN)
        self._poll = poller
        self._line = ""
        self.closed = False

    def readline(self):
        if self.closed:
            return None
        for _ in range(self.MAX_READ):
            if not self._poll.poll(0):
                return None
            try:
                ch = self._in.read(1)
            except ValueError:  # bytes that do not decode (UnicodeError): line noise
                self._line = ""
                continue
            except OSError:  # the port went away: as good as EOF
                ch = ""
            if not ch:
                self._close()
                return None
            if ch in ("\r", "\n"):
                line, self._line = self._line, ""
                return line
            self._line += ch
            if len(self._line) > self.MAX_LINE:
                self._line = ""
        return None

    def _close(self):
        self.closed = True
        self._line = ""
        try:
            self._poll.unregister(self._in)
        except (OSError, ValueError, KeyError, AttributeError):
            pass

    def write(self, text):
        sys.stdout.write(text)


def _rng(n):
    import os
    return os.urandom(n)


def build():
    import node
    import pn532
    import rs485
    import settings
    import tapstore

    p = board.pins()
    s = settings.Settings.load(SETTINGS_PATH)
    bus_uart = machine.UART(p["bus_uart"], baudrate=s.baud, tx=p["bus_tx"], rx=p["bus_rx"],
                            rxbuf=512)
    bus = rs485.RS485(bus_uart, machine.Pin(p["de"], machine.Pin.OUT, value=0), s.baud)
    nfc_uart = machine.UART(p["nfc_uart"], baudrate=115200, tx=p["nfc_tx"], rx=p["nfc_rx"])
    nfc = pn532.PN532(nfc_uart)
    try:
        up = clock.Uptime()
        nfc.begin(up.ms)
    except OSError as e:
        print("pn532:", e)  # keep serving the bus; the panel sees no card reads
    r, g, b = p["led"]
    led = node.LedOut(machine.Pin(r, machine.Pin.OUT), machine.Pin(g, machine.Pin.OUT),
                      machine.Pin(b, machine.Pin.OUT))
    buz = machine.Pin(p["buzzer"], machine.Pin.OUT, value=0)
    store = tapstore.TapStore(DATA_DIR)
    updates = node.start_updates("/")
    try:
        console = Console()
    except (OSError, AttributeError, TypeError):
        console = None  # no pollable console on this port: provision with mpremote exec
    return node.CheckpointNode(s, bus, nfc, led, buz, store, _rng, console=console,
                               ota=updates, ota_root="/")


def _log_crash(e):
    try:
        import os
        if os.stat(ERROR_LOG)[6] > ERROR_LOG_MAX:
            os.remove(ERROR_LOG)
    except OSError:
        pass
    try:
        with open(ERROR_LOG, "a") as f:
            sys.print_exception(e, f)
    except OSError:
        pass


def run():
    try:
        import boot
        if getattr(boot, "SAFE_MODE", False):
            print("safe mode: application not started")
            return
    except ImportError:
        pass
    clock.sleep_ms(BOOT_WINDOW_MS)
    n = build()
    gc.collect()
    n.wdt = machine.WDT(timeout=WDT_TIMEOUT_MS)
    try:
        n.run()
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 -- any crash: log it and restart clean
        _log_crash(e)
        clock.sleep_ms(1000)
    machine.reset()
