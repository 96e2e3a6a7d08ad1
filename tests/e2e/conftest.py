"""Fixtures of the end-to-end tests."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.webhook_receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1, released and stopped after the test."""
    rx = Receiver()
    yield rx
    rx.release()
    rx.stop()
