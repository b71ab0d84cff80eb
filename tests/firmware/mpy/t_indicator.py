# LED / buzzer semantics and the node's own patterns.
import indicator as I

import mpytest


def test_patterns_are_distinct_rhythms():
    def rhythm(p):
        return tuple(d for d, c in p)
    assert len({rhythm(I.OFFLINE), rhythm(I.STORED), rhythm(I.UNPROVISIONED)}) == 3
    # "stored" blinks twice per period: two lit steps
    assert sum(1 for _, c in I.STORED if c != I.BLACK) == 2


def test_osdp_permanent_and_temporary():
    ind = I.Indicator()
    perm = (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, I.GREEN, I.BLACK)
    ind.apply_osdp(perm, 0)
    assert ind.colour(50) == I.GREEN
    temp = (0, 0, 2, 2, 2, I.RED, I.BLACK, 10, 0, 0, 0, 0, 0, 0)  # 1 s of red blinking
    ind.apply_osdp(temp, 100)
    assert ind.colour(150) == I.RED and ind.colour(350) == I.BLACK
    assert ind.colour(1200) == I.GREEN  # timer ran out: back to permanent
    ind.apply_osdp(temp, 2000)
    ind.apply_osdp((0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 2050)  # cancel temporary
    assert ind.colour(2060) == I.GREEN


def test_local_overrides_and_flash():
    ind = I.Indicator()
    ind.set_local(I.STORED, 0)
    assert ind.colour(50) == I.AMBER and ind.colour(150) == I.BLACK and ind.colour(300) == I.AMBER
    assert ind.colour(1000) == I.BLACK
    ind.flash(I.TAP_SENT, 1000)
    assert ind.colour(1100) == I.GREEN
    assert ind.colour(1500) == I.BLACK  # flash over, STORED again (its quiet part)


def test_beeper():
    b = I.Beeper()
    b.command(2, 1, 1, 2, 0)  # 100 ms on, 100 ms off, twice
    assert b.is_on(50) and not b.is_on(150) and b.is_on(250) and not b.is_on(450)
    b.command(2, 1, 0, 0, 1000)  # on until told otherwise
    assert b.is_on(99999)
    b.command(1, 0, 0, 0, 100000)  # tone "off"
    assert not b.is_on(100001)


mpytest.run(globals())
