"""Pydantic models of request bodies: types and shapes; the rules live in domain/."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from domain.values import MAX_SAFE_INTEGER


def _real_date(value: str) -> str:
    date.fromisoformat(value)
    return value


Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
PartyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,8}$")]
IsoDate = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), AfterValidator(_real_date),
                    Field(json_schema_extra={"format": "date"})]
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
Text = Annotated[str, StringConstraints(max_length=10_000)]


Qualifier = Literal["exact", "at_least", "all", "unspecified"]
CountBasis = Literal["reported", "approximate", "undisclosed"]
Stance = Literal["denied", "acknowledged", "disputed_facts"]
Outcome = Literal["upheld", "rejected", "withdrawn"]


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", str_max_length=10_000)


class Source(Strict):
    """Where a fact was reported: `publisher` is required; `url` is kept exactly as given."""

    publisher: Text
    url: Text | None = None
    channel: Text | None = None
    published_on: IsoDate | None = None
    quote: Text | None = None


class Sourced(Strict):
    source: Source


class Party(Strict):
    code: PartyCode
    name: Text


class NewAgreement(Sourced):
    id: Slug
    title: Text
    concluded_on: IsoDate
    venue: Text
    parties: list[Party] = Field(min_length=1, max_length=64)
    mediators: list[Text] = Field(max_length=64)


class Quantity(Strict):
    qualifier: Qualifier
    value: Count | None = None


class NewCommitment(Sourced):
    commitment_id: Slug
    obligor: PartyCode
    beneficiary: PartyCode
    action: Text
    subject: Text
    quantity: Quantity
    due_by: IsoDate | None = None
    made_on: IsoDate | None = None
    reciprocal_of: Slug | None = None


class Transfer(Strict):
    model_config = ConfigDict(populate_by_name=False)

    commitment_id: Slug
    from_: PartyCode = Field(alias="from")
    to: PartyCode
    count: Count | None = None
    count_basis: CountBasis


class NewStage(Sourced):
    stage_id: Slug
    completed_on: IsoDate
    description: Text | None = None
    transfers: list[Transfer] = Field(max_length=1000)


class NewClaim(Sourced):
    claim_id: Slug
    party: PartyCode
    commitment_id: Slug | None = None
    statement: Text
    count: Count | None = None
    made_on: IsoDate


class NewAccusation(Sourced):
    accusation_id: Slug
    accuser: PartyCode
    accused: PartyCode
    commitment_id: Slug | None = None
    allegation: Text
    made_on: IsoDate


class NewResponse(Sourced):
    by: PartyCode
    stance: Stance
    statement: Text
    made_on: IsoDate


class NewResolution(Sourced):
    outcome: Outcome
    note: Text
    made_on: IsoDate


class NewDeclaration(Sourced):
    declared_by: list[PartyCode] = Field(max_length=64)
    made_on: IsoDate


class NewCorrection(Sourced):
    event_id: Annotated[str, StringConstraints(max_length=64)]
    reason: Text
    made_on: IsoDate


BODIES: dict[str, type[Sourced]] = {
    "agreement": NewAgreement,
    "commitment": NewCommitment,
    "stage": NewStage,
    "claim": NewClaim,
    "accusation": NewAccusation,
    "response": NewResponse,
    "resolution": NewResolution,
    "fulfilment": NewDeclaration,
    "correction": NewCorrection,
}


def split(model: Sourced) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, source): the validated body with every field present, and its source."""
    data = model.model_dump(by_alias=True, mode="json")
    return {k: v for k, v in data.items() if k != "source"}, data["source"]
