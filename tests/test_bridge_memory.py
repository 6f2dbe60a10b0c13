"""``CompiledModel.memory_plan()`` against the tensors LiteRT's interpreter has for the same .tflite file,
and the error a model that does not fit its SoC's L2 gets from ``tvm_bridge.compile``.

Oracle: LiteRT's tensor and operator details (not the bridge's import). An activation tensor is what an
operator writes (or the model input); it is live from the operator writing it through the last one
reading it (the model output to the end). At every layer's operator, the bytes of the tensors live in
LiteRT must equal the plan's live activations at that layer's step; each MAC layer's weights must be
LiteRT's filter and bias tensors plus an int32 multiplier and shift per output channel.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

pytest.importorskip("tvm")
pytest.importorskip("ai_edge_litert")

import tvm  # noqa: E402
from test_bridge_import import model_path  # noqa: E402
from test_memory_plan import _assert_valid  # noqa: E402

import archs  # noqa: E402
import tvm_bridge  # noqa: E402
from tvm_bridge.litert_ref import LiteRTReference  # noqa: E402
from tvm_bridge.memory import ALIGNMENT_BYTES  # noqa: E402
from tvm_bridge.relax_import import BridgeError, from_tflite  # noqa: E402

CASES = [("kws", "gap9"), ("kws", "diana"), ("ic", "gap9"), ("ic", "diana")]


@pytest.fixture(scope="module")
def compiled():
    cache: dict = {}

    def get(model: str, soc) -> tvm_bridge.CompiledModel:
        key = (model, soc if isinstance(soc, str) else soc.name)
        if key not in cache:
            cache[key] = tvm_bridge.compile(model_path(model), soc)
        return cache[key]

    return get


def _aligned_bytes(details: dict) -> int:
    size = int(np.prod(details["shape"])) * np.dtype(details["dtype"]).itemsize
    return -(-size // ALIGNMENT_BYTES) * ALIGNMENT_BYTES


def _litert_live(ref: LiteRTReference) -> dict[int, dict[int, int]]:
    """Op index -> {tensor index: aligned bytes} of the activation tensors live while the op runs."""
    produced = {ref.input["index"]: 0}
    for position, op in enumerate(ref.ops):
        for t in op["outputs"]:
            produced[t] = position
    last = dict(produced)
    for position, op in enumerate(ref.ops):
        for t in op["inputs"]:
            if t in produced:
                last[t] = position
    last[ref.output["index"]] = len(ref.ops)
    return {op["index"]: {t: _aligned_bytes(ref.tensors[t]) for t in produced if produced[t] <= position <= last[t]}
            for position, op in enumerate(ref.ops)}


@pytest.mark.parametrize("model,soc", CASES)
def test_plan_matches_litert_tensors(compiled, model, soc):
    cm = compiled(model, soc)
    plan = cm.memory_plan()
    with LiteRTReference(model_path(model)) as ref:
        where = ref.layer_tensors(tvm_bridge.layer_graph(from_tflite(model_path(model))))
        live = _litert_live(ref)
    _assert_valid(plan.arena, ALIGNMENT_BYTES)
    assert {s.name for s in plan.steps if s.is_layer} == set(cm.offloaded) == set(where)
    tensors = {t.name: t for t in plan.arena.tensors}
    inputs = [t for t in plan.arena.tensors if t.kind == "input"]
    assert len(inputs) == 1 and plan.arena.footprint(inputs[0]) == _aligned_bytes(ref.input)
    for name, tensors_of in where.items():
        step = plan.layer(name)
        op = next(o for o in ref.ops if o["index"] == tensors_of.op_index)
        out = ref.tensors[op["outputs"][0]]
        assert plan.arena.footprint(tensors[f"{name}:out"]) == _aligned_bytes(out), name
        scratch = sum(plan.arena.footprint(t) for t in plan.arena.live_at(step.index) if t.kind == "scratch")
        assert plan.arena.live_bytes(step.index) - scratch == sum(live[op["index"]].values()), name
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            filt, bias = (ref.tensors[i] for i in op["inputs"][1:3])
            expected = sum(int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize for t in (filt, bias))
            assert step.weight_bytes == expected + 8 * int(out["shape"][-1]), name
        else:
            assert step.weight_bytes == 0, name
        assert step.offloaded == cm.offloaded[name]
        assert step.module == (cm.schedules[name].module if name in cm.schedules else cm.soc.host)
        levels = plan.level_bytes(name)
        module = cm.soc.modules[step.module]
        if step.offloaded:  # tile buffers as generated, within each inner memory
            generated = cm._offloaded_function(name).generated
            for memory in module.memories[:-1]:
                used = sum(b.size for b in generated.buffers if b.memory == memory.name)
                assert levels[memory.name] == used <= memory.size_bytes
        else:
            assert set(levels) == {plan.memory}
    assert plan.memory == "l2" and plan.capacity_bytes == cm.soc.host_module.memories[-1].size_bytes
    assert plan.peak_bytes == plan.activation_bytes + plan.weight_bytes <= plan.capacity_bytes and plan.fits
    assert plan.activation_bytes >= max(sum(v.values()) for v in live.values())


def _small_l2(soc_name: str, size_bytes: int):
    """``soc_name`` with every module's outermost memory shrunk to ``size_bytes``."""
    soc = archs.load(soc_name)
    modules = {name: dataclasses.replace(m, memories=m.memories[:-1] + (dataclasses.replace(m.memories[-1], size_bytes=size_bytes),))
               for name, m in soc.modules.items()}
    return dataclasses.replace(soc, name=f"{soc.name}_small", modules=modules)


def test_a_model_too_big_for_l2_is_refused_naming_its_largest_live_set(compiled):
    with LiteRTReference(model_path("kws")) as ref:
        live = _litert_live(ref)
        where = ref.layer_tensors(tvm_bridge.layer_graph(from_tflite(model_path("kws"))))
    peak_op = max(live, key=lambda i: (sum(live[i].values()), -i))  # the first op with the largest live set
    layer = next(name for name, t in where.items() if t.op_index == peak_op)
    fits = compiled("kws", "gap9").memory_plan()
    soc = _small_l2("gap9", fits.peak_bytes - 1)
    with pytest.raises(tvm_bridge.MemoryOverflowError) as caught:
        tvm_bridge.compile(model_path("kws"), soc)
    message = str(caught.value)
    assert isinstance(caught.value, BridgeError)
    assert f"{fits.peak_bytes} B of gap9_small's l2 ({fits.peak_bytes - 1} B)" in message
    assert f"(layer {layer} on " in message
    for size in live[peak_op].values():
        assert f", {size} B)" in message
    assert 'memory_overflow="warn"' in message


def test_memory_overflow_warn_builds_and_reports(caplog):
    soc = _small_l2("gap9", 40_000)
    with caplog.at_level(logging.WARNING, logger="tvm_bridge.compiled"):
        cm = tvm_bridge.compile(model_path("kws"), soc, memory_overflow="warn")
    plan = cm.memory_plan()
    assert not plan.fits and plan.capacity_bytes == 40_000
    assert any("Largest live set" in r.getMessage() for r in caplog.records)
    assert "DOES NOT FIT" in str(plan)
    with pytest.raises(ValueError, match="memory_overflow must be one of raise, warn"):
        tvm_bridge.compile(model_path("kws"), soc, memory_overflow="ignore")


def test_plan_table_and_json(compiled):
    plan = compiled("ic", "gap9").memory_plan()
    text = str(plan)
    assert text.splitlines()[0].startswith(f"gap9 l2: peak {plan.peak_bytes} B of 1408000 B (fits)")
    assert all(name in text for name in ("conv2d_0", "add_3", "dense_13"))
    data = plan.to_dict()
    assert data["peak_bytes"] == plan.peak_bytes and data["fits"] is True
    assert data["layers"]["add_3"]["level_bytes"] == plan.level_bytes("add_3")


def test_views_tuples_and_dynamic_shapes_hand_checked():
    """A split (one tuple tensor), its fields and a reshape allocate nothing new and keep what they view
    alive; a dynamic shape is refused by name."""
    from tvm.script import relax as R

    from tvm_bridge.memory import plan_memory

    @tvm.script.ir_module
    class Views:
        @R.function
        def main(x: R.Tensor((1, 8, 8, 4), "int8")):
            with R.dataflow():
                t = R.split(x, 2, axis=3)  # step 0: 2 x 128 B
                b = R.add(t[0], t[1])  # steps 1-2 read the fields, step 3 the add (128 B)
                c = R.reshape(b, (1, 128))  # step 4: a view of b
                d = R.astype(c, "int32")  # step 5: 512 B, the output
                R.output(d)
            return d

    plan = plan_memory(Views, archs.load("gap9"), {}, {})
    lifetimes = {t.name: (t.size_bytes, t.first_step, t.last_step, t.kind) for t in plan.arena.tensors}
    assert lifetimes == {"input:x": (256, 0, 0, "input"), "t": (256, 0, 3, "activation"), "b": (128, 3, 5, "activation"),
                         "d": (512, 5, 5, "output")}
    assert plan.activation_bytes == 640 and plan.weight_bytes == 0  # b + d at step 5; t + b at step 3: 384

    @tvm.script.ir_module
    class Dynamic:
        @R.function
        def main(x: R.Tensor(("n", 4), "int8")):
            with R.dataflow():
                y = R.add(x, x)
                R.output(y)
            return y

    with pytest.raises(BridgeError, match="tensor input:x has no static shape"):
        plan_memory(Dynamic, archs.load("gap9"), {}, {})
