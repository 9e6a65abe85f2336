"""The records part of the store contract (configuration documents), on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from agilecity.app import open_store
from agilecity.errors import AlreadyExistsError
from agilecity.settings import Settings
from agilecity.store.base import Record


async def test_records_contract(db_url: str, tmp_path: Path) -> None:
    store = open_store(Settings.load({"db": db_url}, env={}))
    await store.open()
    try:
        first = Record("iot_device", "roubaix", "dev1", {"device_id": "dev1", "n": 1})
        await store.put_record(first, create=True)
        with pytest.raises(AlreadyExistsError):
            await store.put_record(Record("iot_device", "roubaix", "dev1", {}), create=True)
        assert await store.get_record("iot_device", "roubaix", "dev1") == first
        assert await store.get_record("iot_device", "", "dev1") is None  # per tenant
        await store.put_record(Record("iot_device", "", "dev1", {"n": 2}), create=True)
        await store.put_record(Record("iot_group", "roubaix", "g", {"n": 3}), create=True)
        replaced = Record("iot_device", "roubaix", "dev1", {"device_id": "dev1", "n": 4})
        await store.put_record(replaced, create=False)
        assert await store.get_record("iot_device", "roubaix", "dev1") == replaced
        assert [r.tenant for r in await store.list_records("iot_device")] == ["", "roubaix"]
        assert await store.list_records("iot_device", "roubaix") == [replaced]
        assert [r.kind for r in await store.list_records(None)] == [
            "iot_device", "iot_device", "iot_group",
        ]  # fmt: skip
        assert await store.delete_record("iot_device", "roubaix", "dev1") is True
        assert await store.delete_record("iot_device", "roubaix", "dev1") is False
        assert await store.get_record("iot_device", "roubaix", "dev1") is None
    finally:
        await store.close()
