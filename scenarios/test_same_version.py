"""Same-version rejection: an update whose version equals the running one.

It must be refused before anything is written: the other slot stays exactly as it was
and the boot selection does not move.
"""


def test_same_version_is_refused_before_any_write(target):
    before = target.boot_state("before")
    other_before = target.other_slot_md5()
    pub = target.publish("same")
    mark = target.trigger(pub)

    refused = target.expect("refused", since=mark, timeout=60)
    assert refused["reason"] == "same-version"
    assert not target.board.console.events(mark, "writing")

    assert target.other_slot_md5() == other_before  # not one byte written to the other slot
    after = target.boot_state("after")
    if target.kind == "firmware":
        assert after.boot_slot == before.boot_slot and after.otadata == before.otadata
    else:
        assert (after.files.active, after.files.versions["b"]) == ("a", None)
