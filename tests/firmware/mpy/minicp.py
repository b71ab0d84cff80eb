# A minimal OSDP control panel for firmware tests (runs under MicroPython and CPython).
# It is deliberately naive -- one command, one reply -- and uses the spec formulas
# directly; the interop test against libosdp is the independent check.
import osdp_frame
import osdp_sc


class Reply:
    def __init__(self, f, data):
        self.frame = f
        self.code = f.code
        self.data = data
        self.seq = f.seq


class MiniCP:
    def __init__(self, pd, address, scbk=None, now=0, mark=True, transport=None):
        self.pd = pd
        self.transport = transport  # raw -> reply bytes or None; default: pd.receive
        self.address = address
        self.scbk = scbk
        self.seq = 0
        self.now = now
        self.mark = mark
        self.active = False
        self.c_mac = self.r_mac = None
        self.last_raw = None

    def _next_seq(self):
        s = self.seq
        self.seq = 1 if s >= 3 else s + 1
        return s

    def encode(self, code, data=b"", seq=None, scb=None, secure=None):
        if seq is None:
            seq = self._next_seq()
        secure = self.active if secure is None else secure
        mac_fn = None
        if secure:
            if data:
                scb = bytes((2, osdp_sc.SCS_17))
                data = osdp_sc.encrypt_data(self.s_enc, self.r_mac, data)
            else:
                scb = bytes((2, osdp_sc.SCS_15))

            def mac_fn(msg):
                self.c_mac = osdp_sc.compute_mac(self.s_mac1, self.s_mac2, self.r_mac, msg)
                return self.c_mac[:4]
        return osdp_frame.build(self.address, seq, code, data, True, scb, mac_fn, self.mark)

    def send_raw(self, raw, dt=10):
        self.now += dt
        self.last_raw = raw
        if self.transport is not None:
            return self.transport(raw)
        out = self.pd.receive(raw, self.now)
        assert len(out) <= 1, out
        return out[0] if out else None

    def decode(self, reply):
        r = osdp_frame.FrameReader()
        r.feed(reply, self.now)
        f = r.next_frame()
        assert isinstance(f, osdp_frame.Frame), f
        assert f.addr == self.address | 0x80
        data = f.data
        if f.scb is not None and f.scb[1] >= osdp_sc.SCS_15:
            full = osdp_sc.compute_mac(self.s_mac1, self.s_mac2, self.c_mac, f.mac_input())
            assert full[:4] == f.mac, "reply MAC"
            if f.scb[1] == osdp_sc.SCS_18:
                data = osdp_sc.decrypt_data(self.s_enc, self.c_mac, data)
                assert data is not None
            self.r_mac = full
        return Reply(f, data)

    def cmd(self, code, data=b"", **kw):
        raw = self.encode(code, data, **kw)
        reply = self.send_raw(raw)
        return None if reply is None else self.decode(reply)

    def handshake(self, rnd_a=b"\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7", key_type=1):
        key = self.scbk if key_type else osdp_sc.SCBK_D
        r = self.cmd(0x76, rnd_a, scb=bytes((3, osdp_sc.SCS_11, key_type)), secure=False)
        if r.code != 0x76:
            return r
        rnd_b = bytes(r.data[8:16])
        self.s_enc, self.s_mac1, self.s_mac2 = osdp_sc.session_keys(key, rnd_a)
        # A real CP stops here when the PD's cryptogram is wrong; carry on so tests can
        # watch the PD refuse our (wrong-key) server cryptogram too.
        self.pd_cryptogram_ok = r.data[16:32] == osdp_sc.client_cryptogram(
            self.s_enc, rnd_a, rnd_b)
        crypt = osdp_sc.server_cryptogram(self.s_enc, rnd_a, rnd_b)
        r = self.cmd(0x77, crypt, scb=bytes((3, osdp_sc.SCS_13, key_type)), secure=False)
        if r.code == 0x78:
            self.r_mac = bytes(r.data)
            self.active = True
        return r
