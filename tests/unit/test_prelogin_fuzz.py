"""The stateless pre-login cookie (console/prelogin.py) under random and forged input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from console.prelogin import MAX_AGE_S, _mac, _valid_nonce

KEY = b"k" * 32


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120) | st.none())
def test_any_cookie_text_is_rejected_or_valid_never_an_error(cookie):
    assert _valid_nonce(KEY, cookie, 1_000_000.0) is None


def test_only_a_fresh_cookie_signed_with_the_key_is_accepted():
    good = f"abc.1000.{_mac(KEY, 'abc.1000')}"
    assert _valid_nonce(KEY, good, 1000.0 + 10) == "abc"
    assert _valid_nonce(KEY, good, 1000.0 + MAX_AGE_S + 1) is None          # expired
    assert _valid_nonce(b"x" * 32, good, 1010.0) is None                    # other key
    assert _valid_nonce(KEY, good.replace("abc", "abd", 1), 1010.0) is None  # tampered nonce
    assert _valid_nonce(KEY, f"abc.2000.{_mac(KEY, 'abc.1000')}", 2010.0) is None  # moved issue time
