"""The demo (what `make demo` runs) works and leaves nothing running."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_json_reports_no_loss_and_no_duplicates() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["lost"] == 0
    assert report["duplicated"] == 0
    assert report["journal_integrity"] == "ok"
    assert report["daemon"]["exit_code"] == 0
    assert report["daemon"]["unclean_stops_detected"] >= 1
    assert report["events_journaled"] >= 3
    assert report["service_crashes"] == 0
    assert report["centre_audit_ok"] is True
    assert report["synced"] > 0
    cp = report["checkpoints"]
    # Every checkpoint ends green for the guard; one who saw no light may tap again, and the
    # first tap is then kept (delivered late), never lost (report["lost"] above).
    assert cp["green_for_guard"] == cp["readers"]
    assert 0 <= cp["retaps"] <= 2 * cp["readers"]
    assert cp["unknown_refused"] is True
    assert cp["green_but_missing"] == 0
    assert report["broadcast"]["on_verified"] and report["broadcast"]["off_verified"]
    assert report["health"]["camera_down_detected"] is True
    assert report["health"]["isapi_snapshots"] > 0  # the gate camera's Hikvision profile
    assert report["remote_command"]["status"] == "done"
    assert report["remote_command"]["accepted_events"] == 1
    assert report["announcement"]["played_sha256_ok"] is True
    assert report["announcement"]["sound"] == "not_checked"  # never "confirmed" unheard
    # Issue 18's WeChat Work pushes, to the mock group robot: the day's bulletin in parts within
    # the platform's 4096-byte limit, once; one alert for the Actual broadcast, none for the
    # Exercise drill.
    push = report["push"]
    assert push["parts"] >= 1
    assert len(push["part_bytes"]) == push["parts"]
    assert all(0 < b <= 4096 for b in push["part_bytes"])
    assert push["resent_on_rerun"] == 0
    assert push["alerts"] == 1
    assert push["actual_broadcast_alerts"] == 1
    assert push["exercise_pushed"] is False
    # Issue 17's media uplink: the evidence images follow their events to the centre, whose
    # copy hashes to the sha256 in the event.
    media = report["media"]
    assert media["snapshots"] >= 1
    assert media["at_centre"] >= 1 and media["hash_matches"] is True
    # Issue 17's look now: a signed snapshot command, the picture journaled with its request.
    look = report["look_now"]
    assert look["status"] == "done" and look["journaled_with_request"] is True, look
