"""Store conformance: users and sessions (each test runs against every store)."""

from __future__ import annotations

import time

import pytest
import trio
from store_helpers import TIMEOUT

from trionet.store import PasswordAccount, Store, UsernameTaken, UserRecord


async def test_a_created_user_reads_back_equal_by_id_and_by_name(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await store.create_user("alice", "hash", is_admin=True)
        assert isinstance(alice, UserRecord)
        assert (alice.username, alice.password_hash, alice.is_admin) == ("alice", "hash", True)
        assert alice.created_at.endswith("Z") and len(alice.created_at) == 24
        assert await store.get_user(alice.id) == alice
        assert await store.get_user_by_name("alice") == alice
        assert await store.get_user(alice.id + 1000) is None
        assert await store.get_user_by_name("nobody") is None


async def test_ids_increase_from_one(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        first = await store.create_user("a", None)
        second = await store.create_user("b", None)
        assert first.id == 1 and second.id == 2
        assert not first.is_admin and first.password_hash is None


async def test_usernames_are_unique_ignoring_ascii_case(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        alice = await store.create_user("Alice", None)
        with pytest.raises(UsernameTaken):
            await store.create_user("aLICE", "x")
        assert await store.get_user_by_name("ALICE") == alice
        assert await store.get_user_by_name("alice") == alice
        # beyond ASCII, case is not folded (SQLite's NOCASE folds A-Z only)
        eve = await store.create_user("Éve", None)
        assert (await store.create_user("éve", None)).id != eve.id
        assert [u.username for u in await store.list_users()] == ["Alice", "Éve", "éve"]


async def test_an_explicit_id_is_kept_and_later_ids_never_reuse_it(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        explicit = await store.create_user("x", None, user_id=50)
        assert explicit.id == 50
        assert await store.get_user(50) == explicit
        assert (await store.create_user("y", None)).id == 51
        with pytest.raises(UsernameTaken):  # the id is taken
            await store.create_user("z", None, user_id=50)
        assert await store.get_user_by_name("z") is None
        # a backend id above the rest moves the next id past it too
        assert await store.ensure_backend_user(900)
        assert (await store.create_user("w", None)).id == 901
        assert await store.set_backend_username(1200, "named")
        assert (await store.create_user("v", None)).id == 1201
        # a lower explicit id does not move it back
        assert (await store.create_user("u", None, user_id=7)).id == 7
        assert (await store.create_user("t", None)).id == 1202


async def test_users_by_ids_and_list_users_are_by_id(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        for name, uid in (("c", 30), ("a", 10), ("b", 20)):
            await store.create_user(name, None, user_id=uid)
        found = await store.users_by_ids([30, 999, 10, 30])
        assert [u.id for u in found] == [10, 30]
        assert await store.users_by_ids([]) == []
        assert [u.id for u in await store.list_users()] == [10, 20, 30]
        assert await store.list_users() == [await store.get_user(i) for i in (10, 20, 30)]


async def test_a_backend_user_gets_a_user_id_row_and_never_adopts_a_password_account(
    store: Store,
) -> None:
    with trio.fail_after(TIMEOUT):
        assert await store.ensure_backend_user(42) is True
        user = await store.get_user(42)
        assert user is not None
        assert (user.username, user.password_hash, user.is_admin) == ("user42", None, False)
        assert await store.ensure_backend_user(42) is True  # already there: still a backend user
        assert await store.get_user(42) == user
        registered = await store.create_user("reg", "argon2-hash")
        assert await store.ensure_backend_user(registered.id) is False
        assert await store.get_user(registered.id) == registered


async def test_a_backend_user_whose_name_is_taken_gets_the_next_free_suffix(
    store: Store,
) -> None:
    with trio.fail_after(TIMEOUT):
        await store.create_user("user7", "pw")
        await store.create_user("USER7-2", "pw")  # taken ignoring case
        assert await store.ensure_backend_user(7)
        user = await store.get_user(7)
        assert user is not None and user.username == "user7-3"


async def test_set_backend_username_creates_renames_and_refuses(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        assert await store.set_backend_username(5, "five") is True
        assert (await store.get_user(5)).username == "five"  # type: ignore[union-attr]
        assert await store.set_backend_username(5, "Five") is False  # a rename, case only
        assert (await store.get_user(5)).username == "Five"  # type: ignore[union-attr]
        other = await store.create_user("taken", None)
        with pytest.raises(UsernameTaken):
            await store.set_backend_username(5, "TAKEN")
        with pytest.raises(UsernameTaken):
            await store.set_backend_username(60, "taken")
        assert await store.get_user(60) is None
        assert (await store.get_user(5)).username == "Five"  # type: ignore[union-attr]
        password = await store.create_user("pw", "hash")
        with pytest.raises(PasswordAccount):
            await store.set_backend_username(password.id, "renamed")
        assert await store.get_user(password.id) == password
        assert await store.get_user(other.id) == other


async def test_sessions_live_until_they_expire_or_are_deleted(store: Store) -> None:
    with trio.fail_after(TIMEOUT):
        a = await store.create_user("a", None)
        b = await store.create_user("b", None)
        later = time.time() + 3600
        await store.create_session("t1", a.id, later)
        await store.create_session("t2", a.id, later)
        await store.create_session("t3", b.id, later)
        await store.create_session("old", b.id, time.time() - 1)
        assert await store.session_user("t1") == (a.id, pytest.approx(later))
        assert await store.session_user("old") is None  # expired
        assert await store.session_user("missing") is None
        await store.delete_session("t1")
        assert await store.session_user("t1") is None
        assert await store.session_user("t2") is not None
        await store.delete_user_sessions(a.id)
        assert await store.session_user("t2") is None
        assert await store.session_user("t3") == (b.id, pytest.approx(later))
        # creating a session drops the expired ones, so their token may be used again
        await store.create_session("old", a.id, later)
        assert await store.session_user("old") == (a.id, pytest.approx(later))


async def test_concurrent_backend_users_with_one_id_make_one_row(store: Store) -> None:
    results: list[bool] = []

    async def ensure() -> None:
        results.append(await store.ensure_backend_user(77))

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(ensure)
        assert results == [True] * 6
        assert [u.username for u in await store.list_users()] == ["user77"]


async def test_new_ids_never_collide_with_explicit_ones_inserted_at_once(store: Store) -> None:
    """Users made without an id while backend users arrive with the ids the next free id
    would have been: no insert fails, and no two users share an id."""
    registered: list[int] = []
    adopted: list[int] = []

    async def register(i: int) -> None:
        registered.append((await store.create_user(f"r{i}", "pw")).id)

    async def backend(uid: int) -> None:
        if await store.ensure_backend_user(uid):
            adopted.append(uid)  # else a registered user took that id first

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for i in range(1, 11):
                nursery.start_soon(register, i)
                nursery.start_soon(backend, i + 2)
        assert len(registered) == 10 and len(set(registered)) == 10
        assert not set(registered) & set(adopted)
        assert sorted(u.id for u in await store.list_users()) == sorted(registered + adopted)
        for uid in range(3, 13):
            user = await store.get_user(uid)
            assert user is not None
            assert (user.password_hash is None) == (uid in adopted)
        assert (await store.create_user("later", None)).id > max(registered + adopted)
