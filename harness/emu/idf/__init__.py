"""ESP-IDF apps on the virtual ESP32: the API headers (``include/``), their implementation for a board
whose flash, network and console are the emulator's (``src/``), and the host builder (``build.py``)."""
