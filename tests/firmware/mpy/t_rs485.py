# RS-485 direction control: DE high before the first byte, held for the whole frame at
# the configured baud, released right after; turnaround wait after the panel's bytes.
import clock
import machine
import rs485

import mpytest


def test_char_and_turnaround_times():
    assert rs485.char_us(9600) == 1042
    assert rs485.char_us(115200) == 87
    assert rs485.turnaround_us(9600) == 2084
    assert rs485.turnaround_us(115200) == rs485.MIN_TURNAROUND_US


def check_send(baud, n):
    de = machine.Pin(3, machine.Pin.OUT)
    uart = machine.UART(1, baud)
    bus = rs485.RS485(uart, de, baud)
    de.history.clear()
    held = bus.send(bytes(n))
    (t_on, v_on), (t_off, v_off) = de.history
    t_write = uart.tx_log[0][0]
    assert (v_on, v_off) == (1, 0)
    assert t_on <= t_write  # driver enabled before the first start bit
    need = rs485.frame_us(n, baud)
    assert t_off - t_write >= need, (t_off - t_write, need)
    # ... and released promptly (generous: shared CI machines stall)
    assert t_off - t_write < need + rs485.char_us(baud) + 20000
    assert held >= need


def test_de_window_9600():
    check_send(9600, 12)


def test_de_window_115200():
    check_send(115200, 40)


def test_turnaround_wait_after_rx():
    de = machine.Pin(3, machine.Pin.OUT)
    uart = machine.UART(1, 9600)
    bus = rs485.RS485(uart, de, 9600)
    de.history.clear()
    last_rx = clock.ticks_us()
    bus.send(b"\x01", last_rx)
    t_on = de.history[0][0]
    assert clock.ticks_diff(t_on, last_rx) >= rs485.turnaround_us(9600)


def test_re_pin_follows():
    de = machine.Pin(3, machine.Pin.OUT)
    re = machine.Pin(4, machine.Pin.OUT)
    bus = rs485.RS485(machine.UART(1, 115200), de, 115200, re)
    re.history.clear()
    bus.send(b"\x01\x02")
    assert [v for _, v in re.history] == [1, 0]


mpytest.run(globals())
