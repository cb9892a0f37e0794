"""The virtual ESP8266's NONOS SDK for host-built apps (see build.py)."""
