"""The agent's key table on an injected clock: each key is forgotten exactly at its deadline."""

from __future__ import annotations

import pytest

from healthwallet.agent import server, wire
from healthwallet.agent.keytable import MAX_KEYS, KeyTable


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_key_is_forgotten_at_its_deadline_and_wiped() -> None:
    clock = FakeClock()
    table = KeyTable(clock)
    key = bytes(range(32))
    table.add("a" * 32, key, 600)
    clock.now += 599.9
    assert table.get("a" * 32) == key
    assert table.seconds_left() == {"a" * 32: 0}
    clock.now += 0.1
    assert table.get("a" * 32) is None
    assert len(table) == 0 and table.held_once
    assert table.next_deadline() is None
    assert key not in table._page.read(0) and table._page.read(0) == bytes(32)
    table.close()


def test_unlocking_again_moves_the_deadline_and_keeps_one_slot() -> None:
    clock = FakeClock()
    table = KeyTable(clock)
    table.add("b" * 32, b"\x01" * 32, 10)
    table.add("b" * 32, b"\x02" * 32, 100)
    clock.now += 50
    assert table.get("b" * 32) == b"\x02" * 32
    assert table.forget_all() == 1
    assert table.get("b" * 32) is None
    table.close()


def test_a_full_table_refuses_more_keys() -> None:
    table = KeyTable(FakeClock())
    for index in range(MAX_KEYS):
        table.add(f"{index:032x}", bytes(32), 60)
    reply = server.answer(
        table, {"v": 1, "op": "add", "key_id": "f" * 32, "key": "00" * 32, "seconds": 60}
    )
    assert reply.reply == {"ok": False, "error": "full"}
    table.close()


@pytest.mark.parametrize("seconds", [0, -1, server.MAX_SECONDS + 1, 1.5, "60"], ids=str)
def test_add_refuses_a_duration_out_of_bounds(seconds: object) -> None:
    table = KeyTable(FakeClock())
    with pytest.raises(wire.WireError, match="bad field seconds"):
        server.answer(
            table, {"v": 1, "op": "add", "key_id": "c" * 32, "key": "00" * 32, "seconds": seconds}
        )
    assert len(table) == 0
    table.close()
