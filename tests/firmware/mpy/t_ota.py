# Node firmware update, PD side (ota.py): fragments into the inactive slot, hostile and
# out-of-order input, the checks before staging, trial boots and fallback, a torn state file.
import hashlib
import os
import struct

import ota

import mpytest

n_case = [0]


def fresh():
    n_case[0] += 1
    root = "/flash/ota" + str(n_case[0])
    os.mkdir(root)
    return ota.Slots(root), root


def packed(release, image, digest=None):
    d = digest if digest is not None else hashlib.sha256(image).digest()
    return ota.MAGIC + struct.pack("<II", release, len(image)) + d + image


def frag(total, offset, chunk, ftype=ota.FILE_TYPE):
    return struct.pack("<BIIH", ftype, total, offset, len(chunk)) + chunk


def status(stat):
    return struct.unpack("<BHhH", stat)[2]


def send(up, payload, step=100):
    last = None
    for off in range(0, len(payload), step):
        last = status(up.on_file(frag(len(payload), off, payload[off:off + step])))
        if last not in (ota.ST_OK, ota.ST_DONE):
            return last
    return last


IMAGE = bytes(range(256)) * 9


def test_image_staged_in_inactive_slot():
    s, root = fresh()
    up = ota.Updater(s)
    p = packed(3, IMAGE)
    assert send(up, p) == ota.ST_DONE
    # the last fragment again (our status was lost): the same answer, nothing rewritten
    last = len(p) - len(p) % 100 if len(p) % 100 else len(p) - 100
    assert status(up.on_file(frag(len(p), last, p[last:]))) == ota.ST_DONE
    with open(root + "/slot_b", "rb") as f:
        assert f.read() == IMAGE
    s2 = ota.Slots(root)  # as after a reset
    assert (s2.state["active"], s2.state["next"], s2.state["next_release"]) == ("a", "b", 3)


def test_corrupt_wrong_size_and_bad_magic_refused():
    s, root = fresh()
    up = ota.Updater(s)
    bad = bytearray(IMAGE)
    bad[7] ^= 1
    assert send(up, packed(3, bytes(bad), hashlib.sha256(IMAGE).digest())) == ota.ST_ABORT
    assert up.refused == "hash"
    assert send(up, b"XXXX" + packed(3, IMAGE)[4:]) == ota.ST_ABORT
    assert up.refused == "format"
    p = packed(3, IMAGE)
    p = p[:8] + struct.pack("<I", len(IMAGE) + 1) + p[12:]
    assert send(up, p) == ota.ST_ABORT and up.refused == "size"
    assert ota.Slots(root).state["next"] is None
    mpytest.raises(OSError, os.stat, root + "/slot_b")  # a refused image is removed


def test_rollback_and_failed_release_refused():
    s, _ = fresh()
    s.state["release"] = 5
    s.state["failed"] = 7
    up = ota.Updater(s)
    assert send(up, packed(5, IMAGE)) == ota.ST_ABORT and up.refused == "rollback"
    assert send(up, packed(7, IMAGE)) == ota.ST_ABORT and up.refused == "rollback"
    assert send(up, packed(6, IMAGE)) == ota.ST_DONE


def test_hostile_fragments():
    s, _ = fresh()
    up = ota.Updater(s)
    assert up.on_file(b"\x01\x02") is None  # too short: the PD NAKs the length
    assert up.on_file(frag(100, 0, b"abc")[:-1]) is None  # length field disagrees
    assert status(up.on_file(frag(100, 0, b"abc", ftype=9))) == ota.ST_UNKNOWN
    assert status(up.on_file(frag(10, 0, b"abc"))) == ota.ST_ABORT  # smaller than a header
    assert status(up.on_file(frag(ota.HEADER + ota.SLOT_MAX + 1, 0, b"abc"))) == ota.ST_ABORT
    assert status(up.on_file(frag(1000, 50, b"abc"))) == ota.ST_INVALID  # nothing started
    p = packed(2, IMAGE)
    assert status(up.on_file(frag(len(p), 0, p[:100]))) == ota.ST_OK
    assert status(up.on_file(frag(len(p), 0 + 0, p[:100]))) == ota.ST_OK  # restart at 0
    assert status(up.on_file(frag(len(p), 100, p[100:200]))) == ota.ST_OK
    assert status(up.on_file(frag(len(p), 100, p[100:200]))) == ota.ST_OK  # repeat: no write
    assert status(up.on_file(frag(len(p), 300, p[300:400]))) == ota.ST_INVALID  # a gap
    assert status(up.on_file(frag(len(p), 400, p[400:500]))) == ota.ST_INVALID  # stays aborted
    assert s.state["next"] is None
    assert up.on_file(None) is None  # osdp_ABORT with nothing open


def test_switch_trial_confirm():
    s, root = fresh()
    assert send(ota.Updater(s), packed(2, IMAGE)) == ota.ST_DONE
    s = ota.Slots(root)
    assert s.boot() == "switched" and s.state["active"] == "b" and s.state["trial"]
    # an update is not taken while the running slot is still on trial
    assert send(ota.Updater(s), packed(3, IMAGE)) == ota.ST_ABORT
    assert s.confirm() and not s.confirm()
    s = ota.Slots(root)
    assert s.boot() == "ok" and (s.state["active"], s.state["release"]) == ("b", 2)


def test_fallback_after_trial_boots_without_secure_channel():
    s, root = fresh()
    assert send(ota.Updater(s), packed(2, IMAGE)) == ota.ST_DONE
    got = []
    for _ in range(ota.MAX_TRIAL_BOOTS + 1):
        got.append(ota.Slots(root).boot())
    assert got == ["switched"] + ["trial"] * (ota.MAX_TRIAL_BOOTS - 1) + ["fallback"]
    s = ota.Slots(root)
    assert (s.state["active"], s.state["release"], s.state["failed"]) == ("a", 0, 2)
    assert s.boot() == "ok"
    assert send(ota.Updater(s), packed(2, IMAGE)) == ota.ST_ABORT  # not again


def test_torn_state_file_recovered():
    s, root = fresh()
    s.state["release"] = 4
    s.save()
    os.rename(root + "/ota.json", root + "/ota.json.tmp")  # reset between remove and rename
    assert ota.Slots(root).state["release"] == 4
    with open(root + "/ota.json", "w") as f:
        f.write("{garbage")
    os.remove(root + "/ota.json.tmp")
    st = ota.Slots(root).state  # unreadable: the first slot, nothing staged
    assert (st["active"], st["next"], st["trial"]) == ("a", None, 0)


def test_pending_marker_follows_staged_and_trial():
    import node

    s, root = fresh()
    assert node.start_updates(root) is None  # nothing waits: ota.py need not load at start
    assert send(ota.Updater(s), packed(2, IMAGE)) == ota.ST_DONE
    os.stat(root + ota.PENDING)
    up = node.start_updates(root)
    assert up.booted == "switched" and up.slots.state["active"] == "b"
    os.stat(root + ota.PENDING)  # on trial: loaded again at the next start
    assert up.slots.confirm()
    mpytest.raises(OSError, os.stat, root + ota.PENDING)
    assert node.start_updates(root) is None


def test_pd_takes_an_image_only_inside_secure_channel():
    import osdp_frame
    import osdp_pd

    class App:
        calls = 0

        def on_file(self, data):
            App.calls += 1
            return ota.ftstat(0)

    pd = osdp_pd.PeripheralDevice(1, App(), require_sc=False)  # even a node open in the clear
    for code in (osdp_pd.CMD_FILETRANSFER, osdp_pd.CMD_ABORT):
        out = pd.receive(osdp_frame.build(1, 0, code, frag(100, 0, b"abc")), 0)
        r = osdp_frame.FrameReader()
        r.feed(out[0])
        f = r.next_frame()
        assert (f.code, f.data) == (osdp_pd.REPLY_NAK, bytes((osdp_pd.NAK_SC_REQUIRED,)))
    assert App.calls == 0


mpytest.run(globals())
