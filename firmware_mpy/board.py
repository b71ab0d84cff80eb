# Pin map per board.  Edit here, not in node code.  Chosen so the USB console, the
# PN532 UART and the RS-485 UART never share pins.
#
#                      ESP32-C3 SuperMini           Raspberry Pi Pico (RP2040)
#   RS-485 UART        UART1 TX=21 RX=20            UART0 TX=GP0 RX=GP1
#   RS-485 DE(+/RE)    GPIO 3                       GP2
#   PN532 HSU UART     UART0 TX=4 RX=2              UART1 TX=GP4 RX=GP5
#                      (the ESP32-C3 console is its USB-Serial-JTAG, so both UARTs are free)
#   LED (R, G, B)      GPIO 5, 6, 7                 GP13, GP14, GP15
#   buzzer             GPIO 10                      GP16
#   safe-mode button   GPIO 9 (BOOT)                GP22, pull-up, hold low at reset

import sys

BOARDS = {
    "esp32": {
        "bus_uart": 1, "bus_tx": 21, "bus_rx": 20, "de": 3,
        "nfc_uart": 0, "nfc_tx": 4, "nfc_rx": 2,
        "led": (5, 6, 7), "buzzer": 10, "safe": 9,
    },
    "rp2": {
        "bus_uart": 0, "bus_tx": 0, "bus_rx": 1, "de": 2,
        "nfc_uart": 1, "nfc_tx": 4, "nfc_rx": 5,
        "led": (13, 14, 15), "buzzer": 16, "safe": 22,
    },
}


def pins():
    return BOARDS.get(sys.platform, BOARDS["rp2"])
