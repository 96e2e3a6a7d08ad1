"""Vocabularies, identifiers and small value helpers of the domain."""
from __future__ import annotations

import re
import uuid

QUALIFIERS = ("exact", "at_least", "all", "unspecified")
COUNTED_QUALIFIERS = ("exact", "at_least")
COUNT_BASES = ("reported", "approximate", "undisclosed")
STANCES = ("denied", "acknowledged", "disputed_facts")
OUTCOMES = ("upheld", "rejected", "withdrawn")

EVENT_TYPES = (
    "AgreementConcluded",
    "CommitmentMade",
    "StageCompleted",
    "ProgressClaimed",
    "AccusationMade",
    "AccusationAnswered",
    "AccusationResolved",
    "CommitmentFulfilmentDeclared",
    "RecordCorrected",
)
UNCORRECTABLE = ("AgreementConcluded", "RecordCorrected")

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
PARTY_CODE = re.compile(r"^[A-Z]{2,8}$")
MAX_SAFE_INTEGER = 2**53 - 1

_NAMESPACE = uuid.UUID("5b0f6a7e-2f43-4d55-9a44-7061637477a1")


def agreement_uuid(slug: str) -> uuid.UUID:
    """The event-store id of an agreement, derived from its slug."""
    return uuid.uuid5(_NAMESPACE, slug)
