from __future__ import annotations

import time

from trionet.core.ids import IdAllocator, id_timestamp, id_to_iso


def test_ids_increase_and_are_unique_even_in_a_burst() -> None:
    alloc = IdAllocator(3)
    ids = [alloc.next() for _ in range(20_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(i < 2**53 for i in ids)


def test_ids_of_two_workers_never_collide() -> None:
    a, b = IdAllocator(1), IdAllocator(2)
    assert not {a.next() for _ in range(1000)} & {b.next() for _ in range(1000)}


def test_floor_keeps_ids_above_what_was_stored_before() -> None:
    future = IdAllocator(0).next() + (10_000 << 12)  # 10 s ahead
    assert IdAllocator(0, floor=future).next() > future


def test_id_carries_its_time() -> None:
    before = time.time()
    id_ = IdAllocator().next()
    assert abs(id_timestamp(id_) - before) < 1
    assert id_to_iso(id_).endswith("Z") and id_to_iso(id_)[:4] == time.strftime("%Y", time.gmtime())


def test_sixty_four_workers_never_collide_and_a_leased_number_takes_over() -> None:
    allocators = [IdAllocator(w) for w in range(64)]
    seen: set[int] = set()
    for alloc in allocators:
        batch = {alloc.next() for _ in range(300)}  # past 64 per millisecond: borrows ahead
        assert not batch & seen
        seen |= batch
    alloc = IdAllocator(0)
    alloc.set_worker(63)
    assert alloc.worker == 63 and (alloc.next() >> 6) & 63 == 63
    for bad in (-1, 64):
        try:
            IdAllocator(bad)
        except ValueError:
            continue
        raise AssertionError(f"worker {bad} was accepted")


def test_id_to_iso_is_the_allocation_time_to_the_millisecond_in_any_order() -> None:
    """Formatted once a second and once a millisecond (cached): every id, in any order,
    across second, day and year boundaries, reads as its own time."""
    from datetime import UTC, datetime

    from trionet.core.ids import _SHIFT, EPOCH_MS

    def expected(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{ms % 1000:03d}Z")

    year_end = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    times = [EPOCH_MS, EPOCH_MS + 999, EPOCH_MS + 1000, year_end - 1, year_end, year_end - 1,
             year_end + 86_399_999, year_end + 86_400_000, EPOCH_MS + 1, year_end, year_end]
    times += [year_end + n * 137 for n in range(50)]
    for ms in times:
        id_ = ((ms - EPOCH_MS) << _SHIFT) | 5
        assert id_to_iso(id_) == expected(ms), ms
