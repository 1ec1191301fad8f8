"""The resend table keeps a fingerprint and an ack per send, bounded by count, sender and age."""

from __future__ import annotations

from trionet.core.dedupe import Receipt, RecentSends, fingerprint


def _receipt(at: float, content: str = "x") -> Receipt:
    return Receipt(fingerprint("private", 2, None, None, content), None, at)


def test_fingerprints_tell_messages_apart() -> None:
    base = fingerprint("private", 2, None, None, "hi")
    assert base == fingerprint("private", 2, None, None, "hi")
    assert len(base) == 16
    assert base != fingerprint("private", 3, None, None, "hi")
    assert base != fingerprint("private", 2, None, None, "hi!")
    assert base != fingerprint("group", None, 2, None, "hi")
    assert base != fingerprint("private", 2, None, "poll", "hi")


def test_a_receipt_is_found_until_it_ages_out() -> None:
    table = RecentSends(max_age=60)
    table.add(1, "c-1", _receipt(0.0))
    assert table.get(1, "c-1", 59.0) is not None
    assert table.get(2, "c-1", 1.0) is None  # per sender
    assert table.get(1, "c-1", 61.0) is None
    table.add(1, "c-2", _receipt(100.0))  # adding sweeps what aged out
    assert len(table) == 1


def test_the_table_is_bounded_overall_and_per_sender() -> None:
    table = RecentSends(size=100, per_user=10)
    for i in range(50):
        table.add(1, f"a{i}", _receipt(float(i)))
    assert len(table) == 10
    assert table.get(1, "a49", 50.0) is not None and table.get(1, "a39", 50.0) is None
    for user in range(2, 40):
        for i in range(5):
            table.add(user, f"b{i}", _receipt(100.0))
    assert len(table) == 100
    assert table.get(39, "b4", 100.0) is not None


def test_re_adding_a_client_id_replaces_it() -> None:
    table = RecentSends(size=10, per_user=3)
    first, second = _receipt(0.0, "one"), _receipt(1.0, "two")
    table.add(1, "c", first)
    table.add(1, "c", second)
    assert len(table) == 1 and table.get(1, "c", 2.0) is second
    for i in range(5):
        table.add(1, f"d{i}", _receipt(2.0))
    assert len(table) == 3
