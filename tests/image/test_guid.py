"""EFI_GUID encoding against the byte string the UEFI spec's mixed-endian rule gives for the ESP type."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from vmconform.image.guid import ESP_TYPE_GUID, guid_from_bytes, guid_from_seed, guid_to_bytes

ESP_ON_DISK = bytes.fromhex("28732AC11FF8D211BA4B00A0C93EC93B")


def test_esp_type_guid_on_disk_bytes() -> None:
    assert str(ESP_TYPE_GUID).upper() == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    assert guid_to_bytes(ESP_TYPE_GUID) == ESP_ON_DISK
    assert guid_from_bytes(ESP_ON_DISK) == ESP_TYPE_GUID


@given(st.uuids())
def test_round_trip_and_matches_uuid_bytes_le(value: uuid.UUID) -> None:
    assert guid_to_bytes(value) == value.bytes_le
    assert guid_from_bytes(guid_to_bytes(value)) == value


def test_seeded_guids_are_stable_and_distinct() -> None:
    assert guid_from_seed("s", "disk") == guid_from_seed("s", "disk")
    assert len({guid_from_seed("s", "disk"), guid_from_seed("t", "disk"), guid_from_seed("s", "partition/1")}) == 3
