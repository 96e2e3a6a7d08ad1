"""An event stored in an older shape still loads, folds and hashes the same (class_version + upcast)."""
from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import insert

from app.migrate import upgrade
from app.runtime import build
from app.settings import Settings
from domain.values import agreement_uuid
from projections import envelope as env_mod
from projections import ledger, reader
from projections.replay import Filters, answer, fold
from projections.schema import audit_chain, events
from tests import builders as b


def stage_v1_state(agreement_id: str) -> dict[str, Any]:
    """A StageCompleted as version 1 stored it: no `description`, no class_version."""
    return {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2025-02-01T10:00:00.000001+00:00"},
        "event_id": str(uuid.uuid4()), "agreement_id": agreement_id, "recorded_by": "archive",
        "occurred_on": "2025-02-01", "source": {"publisher": "Test Wire"},
        "data": {"stage_id": "s-old", "completed_on": "2025-02-01",
                 "transfers": [{"commitment_id": "c1", "from": "AA", "to": "BB", "count": 100,
                                "count_basis": "reported"}]},
    }


def test_a_version_1_stage_loads_folds_and_hashes_the_same(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/evolution.db"
    upgrade(url)
    runtime = build(Settings(database_url=url))
    try:
        runtime.writer.conclude(json.dumps(b.agreement("accord")).encode(), "t")
        runtime.writer.record("accord", "commitment", json.dumps(b.commitment("c1", value=100)).encode(), "t")
        state = json.dumps(stage_v1_state("accord"), separators=(",", ":")).encode()
        with runtime.app.factory.datastore.transaction(commit=True) as session:
            conn = session.connection()
            _, prev = ledger.head(session)
            conn.execute(insert(events).values(id=3, originator_id=agreement_uuid("accord"), originator_version=3,
                                               topic="domain.agreement:Agreement.StageCompleted", state=state))
            old_envelope = env_mod.build(3, 3, "domain.agreement:Agreement.StageCompleted", state, prev_hash=prev)
            old_hash = env_mod.compute_hash(old_envelope)
            conn.execute(insert(audit_chain).values(position=3, prev_hash=prev, hash=old_hash))

        loaded = runtime.app.repository.get(agreement_uuid("accord"))
        assert loaded.version == 3 and "s-old" in loaded.stage_ids
        upcast = runtime.app.repository.event_store.get(agreement_uuid("accord"), gt=2)
        assert next(iter(upcast)).data["description"] is None

        with runtime.engine.connect() as conn:
            envelopes = reader.agreement_events(conn, "accord")
            assert ledger.verify(conn)["ok"] is True
        assert envelopes[-1]["hash"] == old_hash
        assert "description" not in envelopes[-1]["data"]
        result = answer(fold(envelopes, "accord", Filters()), "accord", Filters(), "2025-03-01")
        assert result["parties"]["AA"]["commitments"][0]["status"] == "fulfilled"

        runtime.writer.record("accord", "stage", json.dumps(b.stage("s-new", transfers=[
            b.transfer("c1", count=1)])).encode(), "t")
        with runtime.engine.connect() as conn:
            assert ledger.verify(conn)["ok"] is True
    finally:
        runtime.close()
