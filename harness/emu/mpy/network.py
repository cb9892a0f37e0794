# network.WLAN for the virtual board. The station joins the bench's emulated access point;
# the harness can take Wi-Fi down through the board's control channel.
import _hil

STA_IF = 0
AP_IF = 1

_c = _hil.call("wlan_constants")
STAT_IDLE = _c["IDLE"]
STAT_CONNECTING = _c["CONNECTING"]
STAT_WRONG_PASSWORD = _c["WRONG_PASSWORD"]
STAT_NO_AP_FOUND = _c["NO_AP_FOUND"]
STAT_CONNECT_FAIL = _c["CONNECT_FAIL"]
STAT_GOT_IP = _c["GOT_IP"]
del _c


class WLAN:
    def __init__(self, interface_id=STA_IF):
        self._if = interface_id

    def active(self, is_active=None):
        if is_active is None:
            return _hil.call("wlan_active", self._if, None)
        _hil.call("wlan_active", self._if, bool(is_active))

    def connect(self, ssid=None, key=None, *, bssid=None):
        _hil.call("wlan_connect", self._if, ssid, key)

    def disconnect(self):
        _hil.call("wlan_disconnect", self._if)

    def isconnected(self):
        return _hil.call("wlan_status", self._if) == STAT_GOT_IP

    def status(self, param=None):
        if param == "rssi":
            return -55
        return _hil.call("wlan_status", self._if)

    def ifconfig(self, config=None):
        if config is None:
            return tuple(_hil.call("wlan_ifconfig", self._if))

    def ipconfig(self, key):
        if key == "addr4":
            c = self.ifconfig()
            return (c[0], c[1])

    def config(self, *args, **kwargs):
        if args and args[0] == "mac":
            return _hil.unb64(_hil.call("wlan_mac"))
        if args and args[0] in ("essid", "ssid"):
            return _hil.call("wlan_ssid", self._if)
        return None

    def scan(self):
        return [tuple(x) for x in _hil.call("wlan_scan")]


def hostname(name=None):
    if name is None:
        return _hil.call("wlan_hostname")


def country(code=None):
    if code is None:
        return "01"


def phy_mode(mode=None):
    if mode is None:
        return 3  # MODE_11N


def ipconfig(*args, **kwargs):
    if args and args[0] == "prefer":
        return 4
    return None


# ESP-IDF v5.x values for the names the API table could not resolve from MicroPython's sources.
AUTH_WPA3_ENT_192 = 10
AUTH_WPA3_EXT_PSK = 11
AUTH_WPA3_EXT_PSK_MIXED_MODE = 12
AUTH_MAX = 16
STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY = 210
STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD = 211
STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD = 212
