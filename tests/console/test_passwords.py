"""Password hashing: its own thread, a bounded queue, and a no-such-account hash that matches
the parameters in force (so a miss costs as long as a wrong password)."""

from __future__ import annotations

import asyncio
import threading

from app.console import passwords


def test_the_no_such_account_hash_has_todays_parameters() -> None:
    assert not passwords._hasher.check_needs_rehash(passwords._DUMMY)


async def test_hashes_run_on_their_own_thread_and_a_crowd_past_the_queue_is_refused() -> None:
    seen: set[str] = set()

    async def check() -> bool:
        def name() -> str:
            return threading.current_thread().name

        seen.add(await passwords._on_hasher_thread(name))
        return await passwords.verify_password(None, "not-the-password")

    crowd = passwords.MAX_WAITING_HASHES + 1
    outcomes = await asyncio.gather(
        *(passwords.verify_password(None, "wrong-password") for _ in range(crowd)),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, passwords.HashesBusy)]
    assert len(refused) == 1, outcomes
    assert refused[0].status_code == 429
    assert [o for o in outcomes if o is not False] == refused
    # The queue empties: the next one is checked again.
    assert await check() is False
    assert all(n.startswith("password-hash") for n in seen), seen
