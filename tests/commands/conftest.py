"""A real centre on loopback TLS (shared with tests/sync) for the command channel tests."""

from tests.sync.conftest import centre, centre_dir  # noqa: F401 - fixtures re-exported
