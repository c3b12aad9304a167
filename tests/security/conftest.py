"""Security tests reuse the end-to-end helpers: the real CLI in a subprocess, a scratch dir."""

from tests.e2e.conftest import port, work  # noqa: F401  (fixtures)
