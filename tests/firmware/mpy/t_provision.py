# Settings and console provisioning.
import provision
import settings as S

import mpytest


def test_console_session_saves_atomically():
    s = S.Settings.load("/flash/settings.json")
    assert s.scbk is None and s.address == 1
    assert provision.handle(s, "set address 12")[0].startswith("ok")
    r, _ = provision.handle(s, "set scbk 000102030405060708090A0B0C0D0E0F")
    assert r.startswith("ok") and "0A0B" not in r.upper() and "kcv=" in r  # key never echoed
    assert provision.handle(s, "save") == ("ok saved", "saved")
    s2 = S.Settings.load("/flash/settings.json")
    assert s2.address == 12 and s2.scbk == bytes(range(16))
    assert provision.handle(s2, "reboot")[1] == "reboot"


def test_errors_name_the_setting():
    s = S.Settings.load("/flash/nothing.json")
    for line, word in (("set address 300", "address"), ("set baud 1234", "baud"),
                       ("set scbk 00", "scbk"),
                       ("set scbk 303132333435363738393a3b3c3d3e3f", "default"),
                       ("set colour red", "colour"), ("frobnicate", "unknown")):
        r, _ = provision.handle(s, line)
        assert r.startswith("error") and word in r, (line, r)
    assert s.address == 1  # nothing changed


def test_kcv_known_answer():
    # AES-128(key 00..0f, zero block) = c6a13b37878f5b826f4f8162a1c8d879
    assert S.kcv(bytes(range(16))) == "c6a13b"


mpytest.run(globals())
