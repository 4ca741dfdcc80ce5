"""The fields of a verified ``cmd/erasure`` (signature, target, time and nonce are checked
before by ``firmware.link.cmdauth``): anything missing or malformed is refused by name."""

from __future__ import annotations

import pytest

from firmware.errors import CommandError
from firmware.link.commands import DELEGATED
from firmware.runtime.device import erasure_args


def test_erasure_is_delegated_to_the_firmware_after_the_signature_check():
    assert "erasure" in DELEGATED


def test_fields_and_actor():
    args = erasure_args({"erasure_id": "er-1", "person_id": "ann", "full": True,
                         "requested_by": "dpo", "by": "central:0123456789abcdef"})
    assert args == {"person_id": "ann", "erasure_id": "er-1", "full": True,
                    "by": "dpo via central:0123456789abcdef"}
    assert erasure_args({"erasure_id": "e", "person_id": "p", "by": "central:k"})["by"] == "central:k"


@pytest.mark.parametrize("payload, reason", [
    ({"erasure_id": "r"}, "person_id"), ({"person_id": "a"}, "erasure_id"),
    ({"person_id": "a", "erasure_id": "x" * 65}, "erasure_id"),
    ({"person_id": "a", "erasure_id": "r", "full": "yes"}, "full"),
    ({"person_id": "a", "erasure_id": "r", "requested_by": ""}, "requested_by"),
])
def test_bad_fields_are_refused(payload, reason):
    with pytest.raises(CommandError, match=reason):
        erasure_args(payload)
