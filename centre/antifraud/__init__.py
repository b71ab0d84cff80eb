"""Anti-fraud detectors over patrol taps: impossible travel and buddy-tapping (docs/antifraud.md).

    from centre.antifraud import detect_buddy_taps, detect_impossible_travel
    from centre.antifraud import tap_records_from_events, walking_times_from_routes

Pure functions of a set of tap records (no I/O, no clock); the walking-time table is built from
routes in the gateway's patrol-data shape plus optional checkpoint positions.
"""

from centre.antifraud.detectors import (
    Alert,
    BuddyRules,
    BuddyTap,
    CoTap,
    ImpossibleTravel,
    TapRecord,
    TravelRules,
    co_taps,
    detect_buddy_taps,
    detect_impossible_travel,
    tap_records_from_events,
)
from centre.antifraud.walking import (
    RouteWalks,
    WalkingTableError,
    WalkingTimes,
    walking_times_from_routes,
)

__all__ = [
    "Alert",
    "BuddyRules",
    "BuddyTap",
    "CoTap",
    "ImpossibleTravel",
    "RouteWalks",
    "TapRecord",
    "TravelRules",
    "WalkingTableError",
    "WalkingTimes",
    "co_taps",
    "detect_buddy_taps",
    "detect_impossible_travel",
    "tap_records_from_events",
    "walking_times_from_routes",
]
