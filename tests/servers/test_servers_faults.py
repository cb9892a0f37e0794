"""FaultPlan and FaultyStream on their own: validation, serialisation, and exact byte positions (no network)."""

from __future__ import annotations

import threading

import pytest

from harness.servers import FaultPlan, FaultyStream

DATA = bytes(range(256)) * 40  # 10240 bytes


class FakeTime:
    """A clock that only moves when the stream sleeps, so rate and stall waits are exact."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def pump(plan: FaultPlan | None, data: bytes = DATA, **kwargs) -> tuple[FaultyStream, list[bytes], object]:
    writes: list[bytes] = []
    fake = kwargs.pop("fake", None) or FakeTime()
    stream = FaultyStream(plan, sleep=fake.sleep, clock=fake.clock)
    result = stream.pump(data, writes.append, **kwargs)
    return stream, writes, result


@pytest.mark.parametrize("kwargs, message", [
    ({"truncate_at": -1}, "truncate_at must be a non-negative int"),
    ({"corrupt": [(5, 0)]}, "mask must be 1..255"),
    ({"corrupt_image": [(-1, 1)]}, "corrupt_image offset must be >= 0"),
    ({"stall_at": 10}, "stall_at needs a stall_s > 0"),
    ({"rate_bps": 0}, "rate_bps must be > 0"),
    ({"on_bytes": [(-5, print)]}, "on_bytes offset must be >= 0"),
    ({"on_bytes": [(5, "not callable")]}, "not callable"),
])
def test_invalid_plans_are_refused_with_the_reason(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        FaultPlan(**kwargs)


def test_round_trip_through_json_rebinds_callbacks_by_name():
    def cut_power() -> None:
        pass

    plan = FaultPlan(truncate_at=100, corrupt=[(7, 1)], stall_at=3, stall_s=0.5, on_bytes=[(50, cut_power)],
                     apply_times=2)
    data = plan.to_dict()
    assert data["on_bytes"] == [{"at": 50, "callback": cut_power.__qualname__}]
    again = FaultPlan.from_dict(data, {cut_power.__qualname__: cut_power})
    assert again == plan and again.on_bytes[0].fn is cut_power
    assert FaultPlan.from_dict(data).on_bytes[0].name == cut_power.__qualname__
    with pytest.raises(ValueError, match="unknown fault plan keys: colour"):
        FaultPlan.from_dict({"colour": "red"})


def test_describe():
    assert FaultPlan().describe() == "no faults" and FaultPlan().is_empty
    assert FaultPlan(truncate_at=4096, rate_bps=10000, apply_times=1).describe() == \
        "truncate@4096, rate 10000 B/s, first 1 transfer"
    assert FaultPlan(corrupt=[(3, 0x0F)], lie_length=9).describe() == "corrupt 3^0x0f, lie length 9"


def test_apply_times_counts_transfers_across_streams():
    plan = FaultPlan(truncate_at=10, apply_times=2)
    assert [FaultyStream(plan).active for _ in range(3)] == [True, True, False]
    assert not plan.would_apply()
    plan.reset()
    assert plan.would_apply() and plan.stats() == {"transfers": 0, "bytes_sent": 0, "events": []}


def test_writes_are_split_at_every_fault_point():
    plan = FaultPlan(on_bytes=[(1000, lambda: None)], stall_at=5000, stall_s=1.0, truncate_at=9000)
    stream, writes, result = pump(plan, chunk_size=4096)
    assert [len(w) for w in writes] == [1000, 3096, 904, 3192, 808]  # packets of 4096, cut at 1000, 5000, 9000
    assert (result.outcome, result.bytes_sent, stream.stopped) == ("truncated", 9000, "truncate")


def test_rate_limit_waits_exactly_for_the_bytes_sent():
    fake = FakeTime()
    _, writes, result = pump(FaultPlan(rate_bps=2048), fake=fake)
    assert result.outcome == "complete" and b"".join(writes) == DATA
    assert fake.now == pytest.approx(len(DATA) / 2048)
    assert max(len(w) for w in writes) <= 2048 // 20


def test_stall_happens_once_and_does_not_count_against_the_rate():
    fake = FakeTime()
    pump(FaultPlan(stall_at=5120, stall_s=3.0, rate_bps=10240), fake=fake)
    assert fake.sleeps.count(3.0) == 1
    assert fake.now == pytest.approx(3.0 + len(DATA) / 10240)


def test_range_offsets_meet_only_faults_at_or_after_their_start():
    plan = FaultPlan(corrupt=[(100, 0xFF), (6005, 0x01)], truncate_at=7000)
    _, writes, result = pump(plan, DATA[6000:], offset=6000)
    expected = bytearray(DATA[6000:7000])
    expected[5] ^= 0x01
    assert b"".join(writes) == bytes(expected)
    assert (result.start, result.end) == (6000, 7000)
    _, writes, result = pump(FaultPlan(truncate_at=10), DATA[20:], offset=20)
    assert (writes, result.outcome) == ([], "truncated")


def test_corruption_hits_only_the_first_send_of_a_byte():
    stream = FaultyStream(FaultPlan(corrupt=[(10, 0x80)]))
    first = stream.piece(0, DATA[:100])
    stream.commit(first)
    again = stream.piece(0, DATA[:100])
    assert first.data[10] == DATA[10] ^ 0x80 and first.clean == DATA[:100]
    assert again.data == DATA[:100]


def test_on_bytes_fires_once_after_n_bytes_with_the_transfer_index():
    seen: list[int] = []
    stream_ref: list[FaultyStream] = []
    plan = FaultPlan(on_bytes=[(3000, lambda: seen.append(stream_ref[0].bytes_sent))])
    stream = FaultyStream(plan)
    stream_ref.append(stream)
    stream.pump(DATA, lambda b: None, chunk_size=1024)
    assert seen == [3000]
    assert [(e["at"], e["transfer"], e["error"]) for e in plan.events] == [(3000, 0, None)]


def test_cancel_ends_a_stall_at_once():
    cancel = threading.Event()
    stream = FaultyStream(FaultPlan(stall_at=10, stall_s=60), cancel=cancel)
    threading.Timer(0.1, cancel.set).start()
    result = stream.pump(DATA, lambda b: None)
    assert (result.outcome, result.bytes_sent) == ("cancelled", 10)


def test_announced_length_and_image_damage_only_for_affected_transfers():
    plan = FaultPlan(lie_length=5, corrupt_image=[(1, 0xFF), (10**6, 1)], apply_times=1)
    first, second = FaultyStream(plan), FaultyStream(plan)
    assert (first.announced_length(100), second.announced_length(100)) == (5, 100)
    assert first.prepare_image(b"\x00\x00\x00") == b"\x00\xff\x00"
    assert second.prepare_image(b"\x00\x00\x00") == b"\x00\x00\x00"
