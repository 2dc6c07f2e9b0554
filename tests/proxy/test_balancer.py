"""Balancer: round robin over a route's targets, a failed target rested, all rested still tried."""

from __future__ import annotations

from gateway.config import Route
from gateway.proxy.balancer import REST_SECONDS, Balancer

A, B, C = "http://10.0.0.1:80", "http://10.0.0.2:80", "http://10.0.0.3:80"


def route(*upstreams: str, name: str = "api") -> Route:
    return Route(name=name, path=f"/{name}", upstreams=upstreams)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def firsts(balancer: Balancer, target_route: Route, requests: int) -> list[str]:
    """The target each of ``requests`` requests tries first."""
    return [balancer.order(target_route)[0] for _ in range(requests)]


def test_requests_go_round_robin_over_the_targets() -> None:
    assert firsts(Balancer(Clock()), route(A, B, C), 6) == [A, B, C, A, B, C]


def test_each_request_can_fall_back_on_every_other_target_in_turn() -> None:
    balancer = Balancer(Clock())
    three = route(A, B, C)
    assert [balancer.order(three) for _ in range(3)] == [[A, B, C], [B, C, A], [C, A, B]]


def test_a_single_target_is_always_the_answer_even_when_rested() -> None:
    balancer = Balancer(Clock())
    balancer.failed(A)
    assert [balancer.order(route(A)) for _ in range(2)] == [[A], [A]]


def test_routes_with_the_same_targets_share_one_rotation() -> None:
    balancer = Balancer(Clock())
    first, second = route(A, B, name="first"), route(A, B, name="second")
    assert [balancer.order(first)[0], balancer.order(second)[0]] == [A, B]


def test_routes_with_other_targets_rotate_apart() -> None:
    balancer = Balancer(Clock())
    assert firsts(balancer, route(A, B), 1) == [A]
    assert firsts(balancer, route(B, C), 1) == [B]
    assert firsts(balancer, route(A, B), 1) == [B]


def test_a_failed_target_is_tried_last_while_it_rests() -> None:
    clock = Clock()
    balancer = Balancer(clock, rest=10)
    balancer.failed(A)
    clock.now += 9.9
    assert [balancer.order(route(A, B, C)) for _ in range(3)] == [
        [B, C, A],
        [B, C, A],
        [C, B, A],
    ]


def test_when_every_target_rests_all_are_still_tried_in_turn() -> None:
    clock = Clock()
    balancer = Balancer(clock, rest=10)
    for target in (A, B, C):
        balancer.failed(target)
    assert [balancer.order(route(A, B, C)) for _ in range(2)] == [[A, B, C], [B, C, A]]


def test_a_rested_target_is_back_in_turn_once_its_rest_is_over() -> None:
    clock = Clock()
    balancer = Balancer(clock, rest=10)
    balancer.failed(A)
    clock.now += 10
    assert balancer.order(route(A, B)) == [A, B]


def test_a_success_ends_the_rest_at_once() -> None:
    balancer = Balancer(Clock(), rest=10)
    balancer.failed(A)
    balancer.succeeded(A)
    assert balancer.order(route(A, B)) == [A, B]


def test_another_failure_starts_the_rest_again() -> None:
    clock = Clock()
    balancer = Balancer(clock, rest=10)
    balancer.failed(A)
    clock.now += 8
    balancer.failed(A)
    clock.now += 8  # 16 s after the first failure, 8 s after the second
    assert balancer.order(route(A, B)) == [B, A]


def test_by_default_a_failed_target_rests_for_rest_seconds() -> None:
    clock = Clock()
    balancer = Balancer(clock)
    two = route(A, B)
    balancer.failed(A)
    clock.now += REST_SECONDS - 0.1
    assert balancer.order(two) == [B, A]
    assert balancer.order(two) == [B, A]
    clock.now += 0.1
    assert balancer.order(two) == [A, B]
