from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buff_dataplane.core.decimals import canonical_decimal, parse_decimal
from buff_dataplane.core.errors import ValidationError


def test_parse_is_exact():
    assert parse_decimal("61800.30") == Decimal("61800.30")
    assert parse_decimal(b"0.00000001") == Decimal("0.00000001")
    assert parse_decimal("1e-8") == Decimal("0.00000001")


@pytest.mark.parametrize(
    "bad", ["NaN", "inf", "-Infinity", "", "1,5", "0x10", "1.2.3", " 1", "1e", "\u0661\u0662.5"]
)
def test_parse_refuses_non_finite_and_junk(bad):
    with pytest.raises(ValidationError, match="not a finite decimal"):
        parse_decimal(bad)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("61800.30", "61800.3"),
        ("0.000", "0"),
        ("-0.00", "0"),
        ("100", "100"),
        ("1E+2", "100"),
        ("1.5e-3", "0.0015"),
        ("007.10", "7.1"),
    ],
)
def test_canonical_form(text, canonical):
    assert canonical_decimal(text) == canonical


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=8, min_value=-(10**12), max_value=10**12
    )
)
def test_canonical_form_preserves_value_and_is_idempotent(value):
    text = canonical_decimal(value)
    assert Decimal(text) == value
    assert canonical_decimal(text) == text
    assert "e" not in text.lower()
