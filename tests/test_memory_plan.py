"""Static memory plan: the liveness planner (``mapper.arena``) against independent checks, and the plan of
compiled models (``CompiledModel.memory_plan``) against the tensors LiteRT's interpreter has.

Planner oracles: a placement is valid when no two tensors live at a common step overlap in address
range (checked pairwise here); its arena can never be below the largest live set (summed here step by
step); the exact optimum of a small set is the best lowest-fit packing over every placement order (any
packing can be lowered tensor by tensor, in offset order, to the lowest free offset, so some order
reaches the optimum) — computed here with its own code, not the planner's.
"""

from __future__ import annotations

import itertools
import random

import pytest

from mapper.arena import GREEDY_BOUND, ArenaError, LiveTensor, plan_arena
from mapper.memory_plan import MemoryPlan, StepMemory, build_plan


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _assert_valid(plan, alignment: int = 1) -> None:
    """No two simultaneously live tensors share an address; offsets aligned; arena covers every tensor."""
    items = list(zip(plan.tensors, plan.offsets_bytes))
    for (a, oa), (b, ob) in itertools.combinations(items, 2):
        if a.size_bytes == 0 or b.size_bytes == 0:
            continue
        live_together = any(a.first_step <= s <= a.last_step for s in range(b.first_step, b.last_step + 1))
        if live_together:
            assert oa + _align(a.size_bytes, alignment) <= ob or ob + _align(b.size_bytes, alignment) <= oa, (a, oa, b, ob)
    for t, o in items:
        assert o % alignment == 0
        assert o + t.size_bytes <= plan.arena_bytes


def _max_live_sum(tensors, alignment: int = 1) -> int:
    steps = range(min(t.first_step for t in tensors), max(t.last_step for t in tensors) + 1)
    return max(sum(_align(t.size_bytes, alignment) for t in tensors if t.first_step <= s <= t.last_step) for s in steps)


def _optimum(tensors) -> int:
    """Smallest arena over all placement orders, each tensor at the lowest offset free of its live peers."""
    best = None
    for order in itertools.permutations(range(len(tensors))):
        offsets: dict[int, int] = {}
        for i in order:
            size = tensors[i].size_bytes
            taken = sorted((offsets[j], offsets[j] + tensors[j].size_bytes) for j in offsets
                           if max(tensors[i].first_step, tensors[j].first_step) <= min(tensors[i].last_step, tensors[j].last_step))
            offset = 0
            for start, end in taken:
                if start - offset >= size:
                    break
                offset = max(offset, end)
            offsets[i] = offset
        arena = max(offsets[i] + tensors[i].size_bytes for i in offsets)
        best = arena if best is None else min(best, arena)
    return best


def _random_sets(count: int, seed: int = 0):
    """The seeded random sets the arena module docstring reports on (2-7 tensors, 1-100 B, steps 0-10)."""
    rng = random.Random(seed)
    for _ in range(count):
        tensors = []
        for i in range(rng.randint(2, 7)):
            first = rng.randint(0, 6)
            last = rng.randint(first, first + rng.randint(0, 4))
            tensors.append(LiveTensor(f"t{i}", rng.randint(1, 100), first, last))
        yield tensors


def test_greedy_is_valid_and_within_its_documented_bound_of_the_brute_force_optimum():
    optimal, worst = 0, 1.0
    sets = list(_random_sets(400))
    for tensors in sets:
        plan = plan_arena(tensors)
        _assert_valid(plan)
        best = _optimum(tensors)
        assert plan.arena_bytes >= best >= _max_live_sum(tensors)
        assert plan.peak_live_bytes == _max_live_sum(tensors)
        optimal += plan.arena_bytes == best
        worst = max(worst, plan.arena_bytes / best)
    assert worst <= GREEDY_BOUND
    assert optimal >= 0.99 * len(sets)  # the docstring's figure (these are its first 400 sets)


@pytest.mark.parametrize("alignment", [1, 4, 16])
def test_larger_random_sets_are_valid_and_above_the_live_set_bound(alignment):
    rng = random.Random(alignment)
    for _ in range(50):
        tensors = []
        for i in range(rng.randint(1, 60)):
            first = rng.randint(0, 40)
            size = rng.choice([0, 1, 3, 64, 1000, rng.randint(1, 5000)])
            tensors.append(LiveTensor(f"t{i}", size, first, first + rng.randint(0, 10)))
        plan = plan_arena(tensors, alignment)
        _assert_valid(plan, alignment)
        if any(t.size_bytes for t in tensors):
            assert plan.arena_bytes >= _max_live_sum(tensors, alignment)
        assert plan_arena(list(reversed(tensors)), alignment).offsets_bytes == \
            tuple(reversed(plan.offsets_bytes))  # deterministic: input order does not matter


def test_a_layer_chain_reuses_memory_hand_checked():
    # a -> b -> c -> d, each tensor read by the next step: peak = two neighbours
    chain = [LiveTensor("a", 100, 0, 1), LiveTensor("b", 300, 1, 2), LiveTensor("c", 200, 2, 3), LiveTensor("d", 50, 3, 3)]
    plan = plan_arena(chain)
    assert plan.arena_bytes == 500  # b + c
    assert plan.offset_of("b") == 0 and plan.offset_of("c") == 300 and plan.offset_of("a") == 300
    assert plan.offset_of("d") == 0
    # a skip connection keeps "a" live to the end: it cannot share with anything
    skip = chain[:3] + [LiveTensor("a2", 100, 0, 3)]
    assert plan_arena(skip).arena_bytes == _optimum(skip) == 600


@pytest.mark.parametrize("tensors,says", [
    ([LiveTensor("x", -1, 0, 0)], "x.*size_bytes"),
    ([LiveTensor("x", 4, 3, 2)], "x.*last_step 2 is before first_step 3"),
    ([LiveTensor("x", 4, 0, 0), LiveTensor("x", 4, 1, 1)], "'x' appears twice"),
])
def test_malformed_tensors_are_rejected_by_name(tensors, says):
    with pytest.raises(ArenaError, match=says):
        plan_arena(tensors)


def _toy_plan(capacity: int) -> MemoryPlan:
    tensors = [LiveTensor("input:x", 100, 0, 1, "input"), LiveTensor("conv_0:out", 400, 0, 1),
               LiveTensor("conv_0:scratch", 64, 0, 0, "scratch"), LiveTensor("dense_1:out", 10, 1, 1, "output")]
    steps = [StepMemory(0, "conv_0", "acc", True, True, ("input:x", "conv_0:out", "conv_0:scratch"), 1000, (("l1", 300),)),
             StepMemory(1, "dense_1", "host", True, False, ("conv_0:out", "dense_1:out"), 50)]
    return build_plan("toy", "l2", capacity, tensors, steps, alignment_bytes=4)


def test_plan_totals_levels_and_overflow_message_hand_checked():
    plan = _toy_plan(capacity=2000)
    # step 0 holds input 100 + conv out 400 + scratch 64; step 1 holds input, conv out, dense out 12 (aligned)
    assert plan.arena.live_bytes(0) == 564 and plan.arena.live_bytes(1) == 512
    assert plan.weight_bytes == 1050 and plan.activation_bytes == 564 and plan.peak_bytes == 1614 and plan.fits
    assert plan.level_bytes("conv_0") == {"l1": 300, "l2": 100 + 400 + 64 + 1000}
    assert plan.level_bytes("dense_1") == {"l2": 400 + 12 + 50}
    assert plan.largest_live_step.name == "conv_0"
    text = str(plan)
    assert "peak 1614 B of 2000 B (fits)" in text and "conv_0" in text and "dense_1" in text
    small = _toy_plan(capacity=1500)
    assert not small.fits
    message = small.overflow_message()
    for part in ("1614 B", "1500 B", "step 0 (layer conv_0 on acc)", "conv_0:out (activation, 400 B)",
                 "conv_0:scratch (scratch, 64 B)", "input:x (input, 100 B)"):
        assert part in message
    assert small.to_dict()["layers"]["conv_0"]["level_bytes"] == {"l1": 300, "l2": 1564}


def test_a_step_naming_an_unknown_tensor_is_rejected():
    with pytest.raises(ValueError, match="step 0 .*names unknown tensors \\['nope'\\]"):
        build_plan("toy", "l2", 10, [], [StepMemory(0, "x", "host", True, False, ("nope",))])
