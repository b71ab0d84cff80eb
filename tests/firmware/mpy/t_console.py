# The USB console under real MicroPython: stdin at EOF (the wasm port's own sys.stdin
# polls readable and reads '' -- exactly a node whose host hung up), floods, noise.
import startup

import mpytest


class Poller:
    """A select.poll stand-in that says 'readable' until unregistered (as at EOF)."""

    def __init__(self):
        self.registered = True
        self.polls = 0

    def poll(self, _timeout):
        self.polls += 1
        return [(None, 1)] if self.registered else []

    def unregister(self, _stream):
        self.registered = False


class Stream:
    def __init__(self, text, eof=True):
        self.text = text
        self.eof = eof
        self.reads = 0

    def read(self, n):
        self.reads += 1
        if self.text:
            ch, self.text = self.text[:n], self.text[n:]
            return ch
        if self.eof:
            return ""
        return "x"  # a flood that never ends


def test_real_stdin_at_eof_returns_and_closes():
    c = startup.Console()  # this port's sys.stdin: poll() readable, read(1) == ''
    assert c.readline() is None
    assert c.closed
    assert c.readline() is None


def test_eof_after_a_partial_line_reads_once_more_and_stops():
    s, p = Stream("show\nset addr"), Poller()
    c = startup.Console(s, p)
    assert c.readline() == "show"
    assert c.readline() is None and c.closed
    reads = s.reads
    for _ in range(5):
        assert c.readline() is None
    assert s.reads == reads  # closed: never touches the stream again


def test_endless_input_is_read_in_bounded_slices():
    s = Stream("", eof=False)
    c = startup.Console(s, Poller())
    for _ in range(3):
        assert c.readline() is None
    assert s.reads == 3 * startup.Console.MAX_READ
    assert len(c._line) <= startup.Console.MAX_LINE


def test_node_loop_runs_with_stdin_at_eof():
    n = startup.build()
    n.console = startup.Console()  # real stdin at EOF
    for _ in range(5):
        n.step()
    assert n.console.closed


def test_damaged_settings_file_starts_unprovisioned():
    for junk in ('{"address": ', '[1, 2]', '{"address": 500}', '\xff\xfe', '{"scbk": 7}'):
        with open(startup.SETTINGS_PATH, "w") as f:
            f.write(junk)
        n = startup.build()  # before: ValueError / SettingsError, a crash and a reset loop
        assert n.pd.address == 1 and n.pd.scbk is None
    import os
    os.remove(startup.SETTINGS_PATH)


mpytest.run(globals())
