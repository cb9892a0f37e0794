"""Fixtures the virtual-board tests share (defined beside the helpers they use)."""

from slipwire import make_host  # noqa: F401  (a loader driven directly)
from test_idf_runtime import server  # noqa: F401  (an HTTP server for an ESP-IDF client to update from)
from test_micropython import mpy_board, repl_of  # noqa: F401  (a MicroPython board, its REPL)
