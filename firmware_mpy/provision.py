# Provisioning over the USB console, line by line, while the node runs.
#
#   show                      settings (the key only as its check value)
#   set address 5             0..126
#   set baud 9600             9600 19200 38400 57600 115200 230400
#   set scbk <32 hex digits>  the node's Secure Channel base key
#   set install on|off        accept the default key (SCBK-D) once, to be keyed by the panel
#   set numbered on|off       every tap as a numbered osdp_MFGREP (what our gateway wants)
#   set serial 1234           reported in osdp_PDID
#   save                      write settings.json (atomic)
#   reboot                    apply
#
# Pure: handle(settings, line) -> (reply_text, action) with action in
# (None, "saved", "reboot").  The console loop lives in node.py.

import settings as _settings


def _value(key, text):
    if key in ("address", "baud", "serial"):
        return int(text, 0)
    if key in ("install_mode", "numbered_taps"):
        if text in ("on", "1", "true", "yes"):
            return True
        if text in ("off", "0", "false", "no"):
            return False
        raise _settings.SettingsError("%s: say on or off" % key)
    if key == "scbk":
        _settings.parse_key(text)
        return text.lower()
    if key == "vendor_code":
        return int(text, 0)
    raise _settings.SettingsError("%s: unknown setting" % key)


_ALIASES = {"install": "install_mode", "vendor": "vendor_code", "key": "scbk",
            "numbered": "numbered_taps"}


def handle(s, line):
    """One console line -> (reply, action)."""
    words = line.strip().split()
    if not words:
        return "", None
    cmd = words[0].lower()
    try:
        if cmd == "show":
            return "ok " + s.describe(), None
        if cmd == "set" and len(words) == 3:
            key = _ALIASES.get(words[1].lower(), words[1].lower())
            s.set(key, _value(key, words[2]))
            return "ok " + s.describe() + " (unsaved)", None
        if cmd == "save":
            try:
                s.save()
            except OSError as e:  # flash full or worn: say so, keep running
                return "error cannot save: %s" % (e,), None
            return "ok saved", "saved"
        if cmd == "reboot":
            return "ok rebooting", "reboot"
        if cmd == "help":
            return "ok commands: show | set <key> <value> | save | reboot", None
    except (ValueError, _settings.SettingsError) as e:
        return "error " + str(e), None
    return "error unknown command (try: help)", None
