# Node firmware update over the bus: the PD side of osdp_FILETRANSFER and two flash slots.
#
# Theory of operation: the gateway sends one file, type FILE_TYPE, of HEADER bytes then
# the image.  The header carries the release number, the image size and its sha256,
# copied by the gateway from bundle metadata whose Ed25519 signature it checked (the
# node does not verify Ed25519 itself: too slow and too large in pure Python; the hash
# ties the bytes that arrived to the signed metadata).  Fragments go into the slot that
# is not running, hashed as they arrive; after the last one the node checks size, hash
# and release and only then records "next" in the state file (written to a temporary
# file and renamed, so a reset leaves either the old or the new state).  A refused
# image leaves the state untouched: the node stays on its slot.
#
# Boot (Slots.boot, once per start): a staged slot becomes active on trial; a slot on
# trial that has not seen Secure Channel after MAX_TRIAL_BOOTS starts is abandoned and
# the previous slot is active again.  Slots.confirm() (called once SC is up) ends the
# trial.  Updater.on_file(data) answers each fragment with osdp_FTSTAT data.
#
# Heap: this module is not loaded on a node in steady state (its names alone would cost a
# new qstr pool).  A marker file, PENDING, exists only while an image is staged or on
# trial; node.start_updates() loads the module at start only then, and node.on_file()
# loads it when a transfer arrives.
#
# Usage:  s = Slots("/"); s.boot(); up = Updater(s); stat = up.on_file(cmd_data)

from micropython import const
import hashlib
import json
import os
import struct

FILE_TYPE = const(1)  # osdp_FILETRANSFER file type of a node image
MAGIC = b"CGN1"
HEADER = const(44)  # MAGIC, release u32, image size u32, sha256 (32 bytes)
SLOT_MAX = const(98304)  # largest image a slot takes (96 KiB)
MAX_TRIAL_BOOTS = const(2)
PENDING = "/ota.pending"  # under the root: present while staged or on trial
# osdp_FTSTAT status (signed 16 bit, OSDP 2.2 section 7.25)
ST_OK = const(0)
ST_DONE = const(1)  # contents processed; switched to at the next boot
ST_ABORT = const(-1)
ST_UNKNOWN = const(-2)  # file type not ours
ST_INVALID = const(-3)  # fragment out of order, size out of range


def ftstat(status):
    """osdp_FTSTAT data: control (interleave allowed), delay 0, status, rx size 0."""
    return struct.pack("<BHhH", 1, 0, status, 0)


class Slots:
    """Two image files on flash and a small state file (see the theory above)."""

    def __init__(self, root):
        self.root = root.rstrip("/")
        self.path = self.root + "/ota.json"
        self.state = self._load()

    def _load(self):
        for p in (self.path, self.path + ".tmp"):  # .tmp: a reset between remove and rename
            try:
                with open(p) as f:
                    st = json.load(f)
                if st.get("active") in ("a", "b"):
                    return st
            except (OSError, ValueError):
                pass
        return {"active": "a", "release": 0, "next": None, "next_release": 0,
                "trial": 0, "prev": None, "prev_release": 0, "failed": 0}

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        try:
            os.rename(tmp, self.path)
        except OSError:  # a file system that will not rename over a file
            os.remove(self.path)
            os.rename(tmp, self.path)

    def slot_path(self, slot):
        return self.root + "/slot_" + slot

    def inactive(self):
        return "b" if self.state["active"] == "a" else "a"

    def _pending(self, on):
        p = self.root + PENDING
        if on:
            with open(p, "w"):
                pass
        else:
            try:
                os.remove(p)
            except OSError:
                pass

    def stage(self, release):
        st = self.state
        st["next"] = self.inactive()
        st["next_release"] = release
        self.save()
        self._pending(True)  # after the state: a reset in between only skips the switch

    def boot(self):
        """Once per start: returns "ok", "switched", "trial" or "fallback"."""
        st = self.state
        if st["trial"]:
            if st["trial"] >= MAX_TRIAL_BOOTS:
                st["failed"] = st["release"]
                st["active"], st["release"] = st["prev"], st["prev_release"]
                st["trial"] = 0
                self.save()
                self._pending(False)
                return "fallback"
            st["trial"] += 1
            self.save()
            return "trial"
        if st["next"]:
            st["prev"], st["prev_release"] = st["active"], st["release"]
            st["active"], st["release"] = st["next"], st["next_release"]
            st["next"] = None
            st["trial"] = 1
            self.save()
            return "switched"
        self._pending(False)
        return "ok"

    def confirm(self):
        """The running slot reached Secure Channel: keep it.  True if this ended a trial."""
        if not self.state["trial"]:
            return False
        self.state["trial"] = 0
        self.save()
        self._pending(False)
        return True


class Updater:
    """Receives one image at a time into the inactive slot; `refused` says why the last
    one was not staged (None when it was)."""

    def __init__(self, slots):
        self.slots = slots
        self._f = None
        self._size = self._at = 0
        self.refused = None
        self.staged = 0  # release staged by the last complete transfer

    def abort(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def on_file(self, data):
        """osdp_FILETRANSFER command data -> osdp_FTSTAT data, or None (bad length).
        None for data: osdp_ABORT, the panel gave up on the transfer."""
        if data is None:
            self.abort()
            return None
        if len(data) < 11:
            return None
        ftype, size, offset, n = struct.unpack_from("<BIIH", data)
        if len(data) != 11 + n:
            return None
        if ftype != FILE_TYPE:
            return ftstat(ST_UNKNOWN)
        if offset == 0:
            self.abort()
            if not HEADER < size <= HEADER + SLOT_MAX or self.slots.state["trial"]:
                self.refused = "size" if not self.slots.state["trial"] else "trial"
                return ftstat(ST_ABORT)
            # open across fragments (closed by abort()), so no `with`
            self._f = open(self.slots.slot_path(self.slots.inactive()), "wb")  # noqa: SIM115
            self._size = size
            self._at = 0
            self._head = b""
            self._sha = hashlib.sha256()
            self.refused = None
        elif self._f is None or size != self._size or offset != self._at:
            if offset + n == self._at and size == self._size:
                # our status was lost and the panel repeats the fragment: answer it again
                if self._f is not None:
                    return ftstat(ST_OK)
                if self.refused is None and self._at == size:
                    return ftstat(ST_DONE)
            self.abort()
            return ftstat(ST_INVALID)
        if offset + n > size:
            self.abort()
            return ftstat(ST_INVALID)
        chunk = data[11:]
        if self._at < HEADER:
            k = HEADER - self._at
            self._head += chunk[:k]
            chunk = chunk[k:]
        if chunk:
            self._sha.update(chunk)
            self._f.write(chunk)
        self._at += n
        if self._at < size:
            return ftstat(ST_OK)
        self.abort()
        why = self._check()
        if why is not None:
            self.refused = why
            try:
                os.remove(self.slots.slot_path(self.slots.inactive()))
            except OSError:
                pass
            return ftstat(ST_ABORT)
        return ftstat(ST_DONE)

    def _check(self):
        h = self._head
        if h[:4] != MAGIC:
            return "format"
        release, isize = struct.unpack_from("<II", h, 4)
        if isize != self._size - HEADER:
            return "size"
        if self._sha.digest() != h[12:44]:
            return "hash"
        st = self.slots.state
        if release <= st["release"] or release == st["failed"]:
            return "rollback"
        self.slots.stage(release)
        self.staged = release
        return None
