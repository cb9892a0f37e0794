# File OTA: the application lives in one of two slot directories; an update fills the
# other one, verifies every file, and switches by renaming one small record into place.
#
#   /slots/a/, /slots/b/   application files; each complete slot ends with .manifest.json
#   /ota_state.json        {"active": "a", "previous": "b", "pending": false, "tries": 0}
#
# The record is replaced with write-new-then-rename, which littlefs makes atomic: a power
# cut leaves either the old record (old slot, untouched) or the new one (new slot, fully
# written and verified). A new slot is on trial ("pending") until its health check
# passes; boot.py counts trial boots and goes back to the previous slot after MAX_TRIES.
import hashlib
import json
import os

from otautil import Refused, check_version, config, hexdigest, log

SLOTS = "/slots"
STATE = "/ota_state.json"
MANIFEST = ".manifest.json"
MAX_TRIES = 2


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def load_state():
    try:
        with open(STATE) as f:
            st = json.load(f)
        if st.get("active") in ("a", "b"):
            return st
    except (OSError, ValueError):
        pass
    return {"active": "a", "previous": None, "pending": False, "tries": 0}


def save_state(st):
    tmp = STATE + ".new"
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.rename(tmp, STATE)


def slot_dir(slot):
    return SLOTS + "/" + slot


def slot_manifest(slot):
    try:
        with open(slot_dir(slot) + "/" + MANIFEST) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def active_version(st=None):
    m = slot_manifest((st or load_state())["active"])
    return m.get("version", "") if m else ""


def _rmtree(path):
    try:
        entries = list(os.ilistdir(path))
    except OSError:
        return
    for e in entries:
        p = path + "/" + e[0]
        if e[1] == 0x4000:
            _rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def _makedirs(path):
    cur = ""
    for part in path.strip("/").split("/"):
        cur += "/" + part
        if not _exists(cur):
            os.mkdir(cur)


def check_manifest(m):
    # A manifest names a version and files with size and SHA-256; names stay inside the slot.
    if not isinstance(m, dict) or not isinstance(m.get("version"), str) or not isinstance(m.get("files"), list):
        raise Refused("bad-manifest", "needs version and files")
    if not m["files"]:
        raise Refused("bad-manifest", "no files")
    chip = m.get("chip")
    if chip not in (None, "any", config().get("chip")):
        raise Refused("wrong-chip", "manifest for %s" % chip)
    for f in m["files"]:
        name = f.get("name") if isinstance(f, dict) else None
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name.split("/") \
                or name == MANIFEST:
            raise Refused("bad-manifest", "bad file name %r" % (name,))
        if not isinstance(f.get("size"), int) or f["size"] < 0:
            raise Refused("bad-manifest", "bad size for %s" % name)
        sha = f.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64:
            raise Refused("bad-manifest", "bad sha256 for %s" % name)
    return m


class BundleSink:
    """Writes the files of a manifest, in order, into the inactive slot from one byte stream."""

    def __init__(self, manifest):
        self.manifest = check_manifest(manifest)
        self.st = load_state()
        check_version(active_version(self.st), manifest["version"], config().get("allow_downgrade", False))
        self.slot = "b" if self.st["active"] == "a" else "a"
        self.size = sum(f["size"] for f in manifest["files"])
        self.f = None
        self.restart()

    def restart(self):
        self.close()
        _rmtree(slot_dir(self.slot))  # whatever an earlier attempt left there
        _makedirs(slot_dir(self.slot))
        self.index = -1
        self.left = 0
        self.received = 0
        self._next_file()
        log("writing", kind="files", slot=self.slot, version=self.manifest["version"],
            files=len(self.manifest["files"]))

    def _next_file(self):
        if self.f is not None:
            self.f.close()
            self.f = None
            entry = self.manifest["files"][self.index]
            if hexdigest(self.h) != entry["sha256"]:
                raise Refused("hash-mismatch", entry["name"])
        self.index += 1
        if self.index >= len(self.manifest["files"]):
            return
        entry = self.manifest["files"][self.index]
        path = slot_dir(self.slot) + "/" + entry["name"]
        if "/" in entry["name"]:
            _makedirs(path.rsplit("/", 1)[0])
        self.f = open(path, "wb")
        self.h = hashlib.sha256()
        self.left = entry["size"]
        if self.left == 0:
            self._next_file()

    def write(self, data):
        pos = 0
        try:
            while pos < len(data):
                if self.f is None:
                    raise Refused("size-mismatch", "more data than the manifest lists")
                n = min(len(data) - pos, self.left)
                chunk = data[pos:pos + n]
                self.f.write(chunk)
                self.h.update(chunk)
                self.left -= n
                pos += n
                self.received += n
                if self.left == 0:
                    self._next_file()
        except OSError as e:
            if e.args and e.args[0] == 28:
                raise Refused("no-space", "filesystem full at %d bytes" % self.received)
            raise

    def current_file(self):
        # For a download of one file: a restart (server ignored Range) redoes only that file.
        return _CurrentFile(self)

    def _restart_current(self, start):
        entry = self.manifest["files"][self.index]
        self.f.close()
        self.f = open(slot_dir(self.slot) + "/" + entry["name"], "wb")
        self.h = hashlib.sha256()
        self.left = entry["size"]
        self.received = start

    def finish(self):
        if self.index < len(self.manifest["files"]) or self.received != self.size:
            raise Refused("size-mismatch", "%d of %d bytes" % (self.received, self.size))
        # Re-read every file: the slot is switched to only if the flash holds the manifest.
        buf = bytearray(512)
        for entry in self.manifest["files"]:
            h = hashlib.sha256()
            n = 0
            with open(slot_dir(self.slot) + "/" + entry["name"], "rb") as f:
                while True:
                    k = f.readinto(buf)
                    if not k:
                        break
                    h.update(memoryview(buf)[:k])
                    n += k
            if n != entry["size"] or hexdigest(h) != entry["sha256"]:
                raise Refused("flash-mismatch", entry["name"])
        with open(slot_dir(self.slot) + "/" + MANIFEST, "w") as f:
            json.dump({"version": self.manifest["version"], "files": self.manifest["files"]}, f)
        log("verified", kind="files", slot=self.slot, bytes=self.size)

    def activate(self):
        st = {"active": self.slot, "previous": self.st["active"], "pending": True, "tries": 0}
        save_state(st)
        log("switch", kind="files", slot=self.slot, version=self.manifest["version"])

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None

    def abandon(self):
        # After a refusal: nothing half-written stays behind; the active slot never changed.
        # On a full filesystem closing the file can fail too; the blocks come back once it is gone.
        try:
            self.close()
        except OSError:
            self.f = None
        for _ in range(2):
            try:
                _rmtree(slot_dir(self.slot))
                return
            except OSError:
                pass


class _CurrentFile:
    def __init__(self, sink):
        self.sink = sink
        self.start = sink.received

    def write(self, data):
        self.sink.write(data)

    def restart(self):
        self.sink._restart_current(self.start)


def select():
    # Runs in boot.py before anything imports the application: count a trial boot, go back
    # after too many, and put the active slot on the import path.
    import sys

    st = load_state()
    if st.get("pending"):
        st["tries"] = st.get("tries", 0) + 1
        if st["tries"] > MAX_TRIES:
            revert(st, "too-many-tries", reset=False)
            st = load_state()
        else:
            save_state(st)
    if slot_manifest(st["active"]) is None and st.get("previous"):
        revert(st, "incomplete-slot", reset=False)
        st = load_state()
    sys.path.insert(0, slot_dir(st["active"]))
    m = slot_manifest(st["active"])
    log("slot", slot=st["active"], version=m.get("version") if m else None, pending=bool(st.get("pending")),
        tries=st.get("tries", 0))
    return st


def revert(st, reason, reset=True):
    bad = st["active"]
    back = st.get("previous")
    if back is None or slot_manifest(back) is None:
        log("rollback-impossible", slot=bad, reason=reason)
        return
    save_state({"active": back, "previous": None, "pending": False, "tries": 0})
    log("rollback", kind="files", slot=back, reason=reason, failed=bad)
    if reset:
        import machine

        machine.reset()


def confirm(healthy, timeout_s):
    # A slot on trial is confirmed once the app imports and its health check passes.
    import time

    st = load_state()
    if not st.get("pending"):
        return False
    t0 = time.ticks_ms()
    reason = ""
    while True:
        try:
            import app

            ok = app.health() if hasattr(app, "health") else True
            if ok and healthy():
                st["pending"] = False
                st["tries"] = 0
                save_state(st)
                log("confirmed", kind="files", slot=st["active"], version=active_version(st))
                return True
            reason = "unhealthy"
        except Exception as e:  # noqa: BLE001 - an app that cannot start has failed its check
            reason = "%s:%s" % (type(e).__name__, e)
            if isinstance(e, (ImportError, SyntaxError)):
                break
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_s * 1000:
            break
        time.sleep_ms(500)
    revert(st, "health-failed:" + reason)
    return False
