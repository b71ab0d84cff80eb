"""The updater's own files read back hostile: the state file raises only UpdateStateError, the
event outbox skips what is not an update event."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.update.install import STEPS, Installer, UpdateStateError
from gateway.update.outbox import Outbox
from gateway.update.runner import SpawnRunner

VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.sampled_from(["a", "b", *STEPS])
    | st.lists(st.integers(), max_size=3)
    | st.fixed_dictionaries({"slot": st.sampled_from(["a", "c"])})
)
KEYS = st.sampled_from(
    ["step", "installed_release", "installed_version", "failed_releases", "target",
     "previous_slot", "last_result", "other"]
)  # fmt: skip


def _installer(root: Path) -> Installer:
    return Installer(
        root,
        public_key=Ed25519PrivateKey.generate().public_key(),
        hardware="rpi4",
        runner=SpawnRunner(root / "run.pid"),
        record=lambda kind, payload: None,
    )


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.one_of(st.binary(max_size=300), st.dictionaries(KEYS, VALUES, max_size=8)))
def test_state_file_raises_only_update_state_error(tmp_path: Path, content: object) -> None:
    inst = _installer(tmp_path)
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    inst.state_path.write_bytes(data)
    try:
        state = inst.load_state()
    except UpdateStateError as exc:
        assert exc.code == "broken"
    else:
        assert state["step"] in STEPS and type(state["installed_release"]) is int
        assert inst.status()["step"] == state["step"]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.binary(max_size=200) | st.builds(
    lambda k, p: json.dumps({"kind": k, "payload": p, "outbox_id": "x"}).encode(),
    st.text(max_size=12), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
), max_size=10))  # fmt: skip
def test_outbox_parse_keeps_only_update_events(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "outbox.draining"
    path.write_bytes(b"\n".join(lines))
    events = Outbox.parse(path)
    assert all(kind.startswith("update.") and payload["outbox_id"] for kind, payload in events)
    assert len(events) <= len(lines)
