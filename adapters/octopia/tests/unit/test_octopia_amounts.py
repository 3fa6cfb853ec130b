"""An amount that is no amount fails the order with a reason, not an arithmetic error."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from orderhub_octopia.mapping import InvalidOctopiaOrder, minor_units


@pytest.mark.parametrize("raw", [b'"NaN"', b'"Infinity"', b"1e999999", b'"-1e40"'])
def test_an_amount_that_is_no_amount_is_a_clear_error(raw: bytes) -> None:
    amount = msgspec.json.decode(raw, type=Decimal)
    with pytest.raises(InvalidOctopiaOrder, match="as an amount"):
        minor_units(amount)


def test_amounts_in_minor_units() -> None:
    assert minor_units(Decimal("12.345")) == 1235
    assert minor_units(Decimal("-0.005")) == -1
    assert minor_units(None) is None
