# RS-485 half-duplex port: drive DE (and /RE) around each transmission.
#
# Turnaround rules (OSDP at 9600..115200 baud):
#  * Before driving the bus, wait until the line has been quiet for TURNAROUND_CHARS
#    character times after the panel's last byte, and at least MIN_TURNAROUND_US, so the
#    panel's transceiver has released the bus (many adapters switch on a timer).
#  * After write(), the UART still shifts out its FIFO: keep DE high until the last
#    stop bit has left -- frame time plus half a character -- then release at once so
#    the panel's next command is not lost.  uart.flush() (where the port has it) waits
#    for the FIFO; the computed frame time covers the shift register and ports without
#    flush.  On ESP32 the UART's own RS-485 half-duplex mode can do this in hardware.
#
# Usage:  bus = RS485(uart, Pin(2, Pin.OUT), 9600); bus.send(frame, rx_quiet_since_us)

from micropython import const

import clock

TURNAROUND_CHARS = const(2)
MIN_TURNAROUND_US = const(500)


def char_us(baud, bits=10):
    """One character time in microseconds (8N1 = 10 bits)."""
    return (bits * 1000000 + baud - 1) // baud


def frame_us(nbytes, baud):
    return nbytes * char_us(baud)


def turnaround_us(baud):
    return max(MIN_TURNAROUND_US, TURNAROUND_CHARS * char_us(baud))


class RS485:
    """Direction control around a UART; de_pin high = transmit."""

    def __init__(self, uart, de_pin, baud, re_pin=None):
        self.uart = uart
        self.de = de_pin
        self.re = re_pin
        self.baud = baud
        self._receive_mode()

    def _receive_mode(self):
        self.de.value(0)
        if self.re is not None:
            self.re.value(0)  # /RE low: receiver on

    def set_baud(self, baud):
        self.baud = baud
        self.uart.init(baudrate=baud)

    def read(self):
        n = self.uart.any()
        return self.uart.read(n) if n else None

    def send(self, data, last_rx_us=None):
        """Transmit one frame; returns the microseconds DE was held high."""
        if last_rx_us is not None:
            wait = turnaround_us(self.baud) - clock.ticks_diff(clock.ticks_us(), last_rx_us)
            if wait > 0:
                clock.sleep_us(wait)
        if self.re is not None:
            self.re.value(1)  # receiver off: no echo of our own frame
        self.de.value(1)
        t0 = clock.ticks_us()
        self.uart.write(data)
        flush = getattr(self.uart, "flush", None)
        if flush is not None:
            flush()
        hold = frame_us(len(data), self.baud) + char_us(self.baud) // 2
        left = hold - clock.ticks_diff(clock.ticks_us(), t0)
        if left > 0:
            clock.sleep_us(left)
        held = clock.ticks_diff(clock.ticks_us(), t0)
        self._receive_mode()
        return held
