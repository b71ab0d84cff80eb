# Pin map per board.  Edit here, not in node code.  Chosen so the USB console, the
# PN532 UART and the RS-485 UART never share pins, and so nothing the chip prints at
# reset can reach the RS-485 bus.
#
#                    ESP32-C3 SuperMini              Raspberry Pi Pico (RP2040)
#   RS-485 UART      UART1 TX=GPIO0 RX=GPIO1         UART0 TX=GP0 RX=GP1
#   RS-485 DE+/RE    GPIO3 (10k pull-down)           GP2 (10k pull-down)
#   PN532 HSU UART   UART0 TX=GPIO21 RX=GPIO20       UART1 TX=GP4 RX=GP5
#   LED R, G, B      GPIO5, GPIO6, GPIO7             GP13, GP14, GP15
#   buzzer           GPIO10 (via a transistor)       GP16 (via a transistor)
#   safe-mode button GPIO9 (the BOOT button)         GP22 to GND
#
# On the ESP32-C3 the REPL is the USB-Serial-JTAG port; the ROM boot log goes out on
# GPIO21 at reset, i.e. into the PN532's RX, which ignores anything that is not a
# PN532 frame (the driver wakes the chip afterwards anyway).

import sys

BOARDS = {
    "esp32": {
        "bus_uart": 1, "bus_tx": 0, "bus_rx": 1, "de": 3,
        "nfc_uart": 0, "nfc_tx": 21, "nfc_rx": 20,
        "led": (5, 6, 7), "buzzer": 10, "safe": 9,
    },
    "rp2": {
        "bus_uart": 0, "bus_tx": 0, "bus_rx": 1, "de": 2,
        "nfc_uart": 1, "nfc_tx": 4, "nfc_rx": 5,
        "led": (13, 14, 15), "buzzer": 16, "safe": 22,
    },
}


def pins():
    """The pin map for this port (sys.platform); the Pico map elsewhere (host tests)."""
    return BOARDS.get(sys.platform, BOARDS["rp2"])
