"""A relationship request's steps across the template's and the pair's deciders."""

from __future__ import annotations

from datetime import UTC, datetime

from domain import relationship_choreography as choreography
from domain.relationship_decider import pair_id
from schemas.commands import OpenRelationship, ReleaseAllocation, RequestRelationship

NOW = datetime(2026, 11, 30, tzinfo=UTC)
REQUEST = RequestRelationship(
    template_id="RLTaaaaaaaaaaaaaaaaa",
    relationship_id="RELaaaaaaaaaaaaaaaaa",
    requester="did:e:peer",
    requester_device="DVCaaaaaaaaaaaaaaaaa",
    creation_content=b"sealed",
    requested_at=NOW,
)


def test_an_allocated_request_opens_in_the_pair_of_requester_and_owner() -> None:
    pair, opening = choreography.opening(REQUEST, "did:e:owner")
    assert pair == pair_id("did:e:owner", "did:e:peer") == pair_id("did:e:peer", "did:e:owner")
    assert opening == OpenRelationship(
        template_id="RLTaaaaaaaaaaaaaaaaa",
        relationship_id="RELaaaaaaaaaaaaaaaaa",
        from_address="did:e:peer",
        from_device="DVCaaaaaaaaaaaaaaaaa",
        to_address="did:e:owner",
        creation_content=b"sealed",
        requested_at=NOW,
    )


def test_a_refused_opening_gives_the_same_allocation_back() -> None:
    _, opening = choreography.opening(REQUEST, "did:e:owner")
    assert choreography.release(opening) == ReleaseAllocation(
        template_id="RLTaaaaaaaaaaaaaaaaa",
        requester="did:e:peer",
        relationship_id="RELaaaaaaaaaaaaaaaaa",
        requested_at=NOW,
    )
