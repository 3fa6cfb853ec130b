"""A database error names its statement, never its values (customers' names, addresses):
the text of such an error lands in logs, on failed commands and in failed messages."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.persistence.tables import cursors

PRIVATE = "Jeanne Dupont, 3 rue des Lilas"


async def test_an_error_shows_the_statement_not_the_customers_data(engine: AsyncEngine) -> None:
    row = {"channel": "c", "account": "a", "name": "n", "value": PRIVATE}
    async with engine.begin() as connection:
        await connection.execute(sa.insert(cursors).values(**row))
    with pytest.raises(IntegrityError) as failed:
        async with engine.begin() as connection:
            await connection.execute(sa.insert(cursors).values(**row))
    text = str(failed.value)
    assert "INSERT INTO cursors" in text
    assert PRIVATE not in text
