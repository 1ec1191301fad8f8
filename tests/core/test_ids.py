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
