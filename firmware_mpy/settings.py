# Node settings on flash (settings.json): OSDP address, SCBK, baud, install mode.
#
# The SCBK is stored as hex in a file only the node reads; `show` never prints it,
# only its key check value (first 3 bytes of AES(key, 0^16)), which is what an
# installer compares with the gateway's record.  Usage: s = load("/settings.json")

import json

import aes128
import osdp_sc

BAUDS = (9600, 19200, 38400, 57600, 115200, 230400)
DEFAULTS = {
    "address": 1,
    "baud": 9600,
    "scbk": None,
    "install_mode": False,
    "serial": 0,
    "vendor_code": 0x0BC0DE,
    "numbered_taps": False,  # True: every tap as a numbered MFGREP (exact dedup)
}


class SettingsError(ValueError):
    pass


def validate(d):
    """Check a settings dict; raises SettingsError naming the key."""
    for k in d:
        if k not in DEFAULTS:
            raise SettingsError("%s: unknown setting" % k)
    a = d.get("address")
    if not isinstance(a, int) or not 0 <= a <= 126:
        raise SettingsError("address: %r is outside 0..126" % (a,))
    if d.get("baud") not in BAUDS:
        raise SettingsError("baud: %r is not one of %s" % (d.get("baud"), BAUDS))
    k = d.get("scbk")
    if k is not None:
        key = parse_key(k)
        if key == osdp_sc.SCBK_D:
            raise SettingsError("scbk: the published default key cannot be a node key")
    for flag in ("install_mode", "numbered_taps"):
        if not isinstance(d.get(flag), bool):
            raise SettingsError("%s: must be true or false" % flag)
    s = d.get("serial")
    if not isinstance(s, int) or not 0 <= s <= 0xFFFFFFFF:
        raise SettingsError("serial: must be a 32-bit number")
    v = d.get("vendor_code")
    if not isinstance(v, int) or not 0 <= v <= 0xFFFFFF:
        raise SettingsError("vendor_code: must be a 24-bit number")
    return d


def parse_key(k):
    try:
        import binascii
        key = binascii.unhexlify(k)
    except (ValueError, TypeError):
        raise SettingsError("scbk: not hex")
    if len(key) != 16:
        raise SettingsError("scbk: must be 16 bytes (32 hex digits)")
    return key


def kcv(key):
    """Key check value: 6 hex digits that identify a key without revealing it."""
    import binascii
    return binascii.hexlify(aes128.ecb_encrypt(key, bytes(16))[:3]).decode()


class Settings:
    """s = Settings.load(path); s.address; s.scbk (bytes|None); s.set("baud", 19200); s.save()"""

    def __init__(self, path, values):
        self.path = path
        self.values = values

    @classmethod
    def load(cls, path):
        d = dict(DEFAULTS)
        try:
            with open(path) as f:
                d.update(json.load(f))
            return cls(path, validate(d))
        except OSError:
            pass  # first boot: defaults (unprovisioned)
        except (ValueError, TypeError, AttributeError) as e:
            # A damaged file (worn flash, a half-written edit by hand) must not crash the
            # node into a reset loop: start unprovisioned (blue LED) and say why.
            print("settings: %s unusable (%s); using defaults" % (path, e))
        return cls(path, validate(dict(DEFAULTS)))

    def save(self):
        validate(self.values)
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            json.dump(self.values, f)
        import os
        os.rename(tmp, self.path)  # atomic on littlefs: a reset never leaves half a file

    def set(self, key, value):
        d = dict(self.values)
        d[key] = value
        self.values = validate(d)

    @property
    def address(self):
        return self.values["address"]

    @property
    def baud(self):
        return self.values["baud"]

    @property
    def install_mode(self):
        return self.values["install_mode"]

    @property
    def scbk(self):
        k = self.values["scbk"]
        return parse_key(k) if k else None

    def describe(self):
        v = self.values
        k = self.scbk
        return ("address=%d baud=%d install_mode=%s numbered_taps=%s serial=%d vendor=0x%06x "
                "scbk=%s") % (
            v["address"], v["baud"], v["install_mode"], v["numbered_taps"], v["serial"],
            v["vendor_code"],
            ("set kcv=" + kcv(k)) if k else "unset")
