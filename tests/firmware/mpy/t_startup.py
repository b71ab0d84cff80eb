# Start-up path as on a node (startup.build with the board pin map and the machine
# shim), and provisioning over the console while the loop runs.
import indicator
import startup

import mpytest


class FakeConsole:
    def __init__(self, lines):
        self.lines = list(lines)
        self.out = []

    def readline(self):
        return self.lines.pop(0) if self.lines else None

    def write(self, text):
        self.out.append(text)


def test_build_unprovisioned_node_and_provision_it():
    n = startup.build()  # no PN532 answers on the shim UART: logged, node still built
    assert n.pd.address == 1 and n.pd.scbk is None
    n.console = FakeConsole(["show", "set address 21",
                             "set scbk 00112233445566778899aabbccddeeff", "save", "reboot"])
    seen = set()
    for _ in range(8):
        n.step()
        seen.add(n.led.colour)
    assert indicator.BLUE in seen  # the "unprovisioned" pattern starts lit
    assert n.console.out[0].startswith("ok address=1")
    assert n.console.out[-2] == "ok saved\n" and n.reboot_requested
    again = startup.build()
    assert again.pd.address == 21 and again.pd.scbk == bytes.fromhex(
        "00112233445566778899aabbccddeeff") and again.pd.require_sc


def test_watchdog_timeout_fits_both_chips():
    assert startup.WDT_TIMEOUT_MS <= 8388  # RP2040 hardware maximum


mpytest.run(globals())
