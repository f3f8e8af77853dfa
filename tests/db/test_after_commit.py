"""`after_commit`: a callback runs once the outermost transaction committed, not when a SAVEPOINT is
released inside it (the relay handles each event in one), and never after a rollback."""

from __future__ import annotations

import pytest

from gateway.db.session import Database, after_commit


async def test_runs_after_the_outer_commit_only(db: Database) -> None:
    fired: list[str] = []
    async with db.unit_of_work() as session:
        async with session.begin_nested():
            after_commit(session, lambda: fired.append("done"))
        assert fired == [], "a released SAVEPOINT commits nothing yet"
        async with session.begin_nested():
            pass
        assert fired == []
    assert fired == ["done"]


async def test_never_runs_after_a_rollback(db: Database) -> None:
    fired: list[str] = []
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            after_commit(session, lambda: fired.append("done"))
            raise RuntimeError("refused")
    assert fired == []
