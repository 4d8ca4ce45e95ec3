"""Regions: latency-based routing inside each customer's boundary.

Pure: replicas are their reports; customers come from chapter 10's
residency file and the keys' owners. A customer who allows any region
gets the nearest region with room and spills over only when it is
full; an EU-only customer gets EU replicas alone, even when they are
full (their admission then refuses), and with no EU replica at all the
replica that is asked refuses at its door.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

import pytest
from ray.serve._private.common import StreamingHTTPRequest

from ch04_streaming.app import dialects
from ch10_compliance.residency import load_residency
from ch12_scaling.gpu_router import GpuAwareRouter, scope_of
from ch12_scaling.regional_routing import route_in_regions
from ch12_scaling.replica_load import ReplicaLoad
from ch12_scaling.stream_owner import (
    KeyOwnersError,
    StreamOwners,
    parse_key_owners,
    residency_refusal,
)
from tests.ch12.test_gpu_aware import IDLE, FakeReplica

EU = replace(IDLE, region="eu", rtt_ms=20.0, max_streams=4)
US = replace(IDLE, region="us", rtt_ms=140.0, max_streams=4)
OWNERS = StreamOwners(load_residency(), {"eu-key": "acme-eu"}, dialects())


def load(base: ReplicaLoad, **changes: Any) -> ReplicaLoad:
    return replace(base, **changes)


def test_any_region_goes_to_the_nearest_with_room() -> None:
    loads = {"us-1": US, "eu-1": load(EU, active_streams=2)}
    assert route_in_regions(loads, {}, ("us", "eu"))[0] == "eu-1"


def test_a_full_region_spills_over_for_a_customer_who_allows_it() -> None:
    full_eu = load(EU, active_streams=4)  # at its admission cap
    loads = {"eu-1": full_eu, "us-1": US}
    assert route_in_regions(loads, {}, ("us", "eu")) == ["us-1"]


def test_an_eu_only_stream_never_leaves_the_eu_even_when_full() -> None:
    full_eu = load(EU, active_streams=4)
    loads = {"eu-1": full_eu, "eu-2": load(full_eu, active_streams=4),
             "us-1": US}
    ranked = route_in_regions(loads, {}, ("eu",))
    assert set(ranked) == {"eu-1", "eu-2"}  # they refuse, with a hint
    assert route_in_regions({"us-1": US}, {}, ("eu",)) == []


def test_streams_placed_since_a_report_fill_a_region() -> None:
    loads = {"eu-1": load(EU, active_streams=2), "us-1": US}
    assert route_in_regions(loads, {"eu-1": 2}, ("us", "eu")) == ["us-1"]


def headers(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Token {key}".encode())]


def test_a_stream_is_its_keys_owners() -> None:
    assert OWNERS.regions_of("/v1/listen", headers("eu-key"), b"") == (
        "eu",)
    # AssemblyAI's browsers put a token in the query instead.
    assert OWNERS.regions_of("/v3/ws", [], b"token=eu-key") == ("eu",)
    default = load_residency().default_regions
    assert OWNERS.regions_of("/v1/listen", headers("other"), b"") == (
        default)
    assert OWNERS.regions_of("/readyz", headers("eu-key"), b"") == default


def test_a_replica_refuses_a_stream_outside_its_customers_regions() -> None:
    assert residency_refusal(OWNERS, "eu", "/v1/listen", headers("eu-key"),
                             b"") is None
    reason = residency_refusal(OWNERS, "us", "/v1/listen",
                               headers("eu-key"), b"")
    assert reason is not None and "stays in eu" in reason


@pytest.mark.parametrize("text", ["key", "=owner", "key=", "a=b,c"])
def test_key_owners_are_key_equals_owner(text: str) -> None:
    with pytest.raises(KeyOwnersError):
        parse_key_owners(text)


def test_key_owners_parse() -> None:
    assert parse_key_owners(" a=x , b=y,") == {"a": "x", "b": "y"}
    assert parse_key_owners("") == {}


class Pending:
    """What the router reads of Serve's pending request."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.args = [pickle.dumps(StreamingHTTPRequest(
            asgi_scope=scope, proxy_actor_name="proxy"))]
        self.routing_context = type("Context", (), {})()


async def test_the_serve_router_keeps_eu_streams_in_the_eu() -> None:
    router = object.__new__(GpuAwareRouter)
    router._use_replica_queue_len_cache = False  # Serve's, not ours
    router.initialize_state(regions="eu,us", key_owners="eu-key=acme-eu")
    eu = FakeReplica("eu-1", load(EU, active_streams=4).to_stats())
    us = FakeReplica("us-1", US.to_stats())
    eu_only = Pending({"path": "/v1/listen", "headers": headers("eu-key"),
                       "query_string": b""})
    anyone = Pending({"path": "/v1/listen", "headers": headers("k"),
                      "query_string": b""})

    async def chosen(pending: Pending, *replicas: FakeReplica) -> list[str]:
        ranks = await router.choose_replicas(
            list(replicas), pending)  # type: ignore[arg-type]
        return [str(rank[0].replica_id) for rank in ranks]

    assert await chosen(eu_only, eu, us) == ["eu-1"]  # full: it refuses
    assert await chosen(anyone, eu, us) == ["us-1"]
    # The EU gone: the US replica is asked, and refuses at its door.
    assert await chosen(eu_only, us) == ["us-1"]


def test_a_forwarded_request_is_read_only_as_serves_own() -> None:
    assert scope_of(None) is None
    not_bytes = Pending({})
    not_bytes.args = ["text"]  # type: ignore[list-item]
    assert scope_of(not_bytes) is None  # type: ignore[arg-type]
    garbage = Pending({})
    garbage.args = [b"not a pickle"]
    assert scope_of(garbage) is None  # type: ignore[arg-type]
