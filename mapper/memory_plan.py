"""A compiled model's static plan of its outermost on-chip memory (L2): ``MemoryPlan``.

The model runs as a sequence of steps (one per operation of the compiled graph: a layer, offloaded or
on the host, or a host op such as a reshape or softmax). The planned memory holds

- the weights (``StepMemory.weight_bytes``): resident for the whole run, in one block after the arena;
- the activation tensors and per-step scratch (``arena``): placed by liveness with
  ``mapper.arena.plan_arena`` (a tensor is live from the step writing it through the last step
  reading it; model inputs from step 0, model outputs to the last step; scratch only during its step).

``peak_bytes`` = arena + weights must not exceed ``capacity_bytes``. Inner on-chip memories (L1 and
below) are not planned here: each offloaded layer uses them alone, ``StepMemory.inner_bytes`` says how
much. Pure data; ``tvm_bridge.memory`` builds it from a compiled Relax module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mapper.arena import ArenaPlan, LiveTensor


@dataclass(frozen=True)
class StepMemory:
    """One step of the run.

    ``name``: the layer name, or ``"<op> <tensor>"`` for a host op; ``module``: the execution module
    running it; ``is_layer``/``offloaded``: a recognised layer / one running generated code on an
    accelerator; ``tensors``: names of the arena tensors it reads, writes or uses as scratch;
    ``weight_bytes``: the constants it reads (bytes, resident in the planned memory); ``inner_bytes``:
    per inner on-chip memory of its module, the bytes its tile buffers take there (offloaded layers).
    """

    index: int
    name: str
    module: str
    is_layer: bool
    offloaded: bool
    tensors: tuple[str, ...]
    weight_bytes: int = 0
    inner_bytes: tuple[tuple[str, int], ...] = ()


class MemoryPlanError(ValueError):
    """The model does not fit the planned memory (the message names the largest live set)."""


@dataclass(frozen=True)
class MemoryPlan:
    """Static plan of one memory (``memory``, ``capacity_bytes``) for one model on one SoC (``soc``)."""

    soc: str
    memory: str
    capacity_bytes: int
    arena: ArenaPlan
    steps: tuple[StepMemory, ...]

    # ------------------------------------------------------------------ totals
    @property
    def weight_bytes(self) -> int:
        """Bytes of all constants (weights, biases, requantization arrays, host-op tables)."""
        return sum(s.weight_bytes for s in self.steps)

    @property
    def activation_bytes(self) -> int:
        """Arena size: activations and scratch placed by liveness (bytes)."""
        return self.arena.arena_bytes

    @property
    def peak_bytes(self) -> int:
        """Bytes of the planned memory the model needs: arena + weights."""
        return self.activation_bytes + self.weight_bytes

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.capacity_bytes

    def live_bytes(self, step: int) -> int:
        """Bytes in the planned memory during ``step``: live activations and scratch + all weights."""
        return self.arena.live_bytes(step) + self.weight_bytes

    @property
    def largest_live_step(self) -> StepMemory:
        """The step with the largest live set (first such step)."""
        return self.steps[max(range(len(self.steps)), key=lambda i: (self.arena.live_bytes(i), -i))]

    def layer(self, name: str) -> StepMemory:
        for step in self.steps:
            if step.is_layer and step.name == name:
                return step
        raise KeyError(f"no layer {name!r} in the memory plan")

    def level_bytes(self, name: str) -> dict[str, int]:
        """Per memory the bytes layer ``name`` itself uses: its tile buffers in the inner memories and, in
        the planned memory, its input/output tensors, scratch and weights."""
        step = self.layer(name)
        tensors = {t.name: t for t in self.arena.tensors}
        own = sum(self.arena.footprint(tensors[t]) for t in step.tensors) + step.weight_bytes
        return {**dict(step.inner_bytes), self.memory: own}

    # ------------------------------------------------------------------ reporting
    def overflow_message(self) -> str:
        """Why the model does not fit: the largest live set (tensors, step, bytes) vs the capacity."""
        step = self.largest_live_step
        live = sorted(self.arena.live_at(step.index), key=lambda t: (-t.size_bytes, t.name))
        listed = ", ".join(f"{t.name} ({t.kind}, {self.arena.footprint(t)} B)" for t in live)
        live_total = self.live_bytes(step.index)
        where = f"layer {step.name} on {step.module}" if step.is_layer else f"host op {step.name}"
        text = (f"the model needs {self.peak_bytes} B of {self.soc}'s {self.memory} ({self.capacity_bytes} B): "
                f"{self.weight_bytes} B of weights + a {self.activation_bytes} B activation arena. Largest live set: "
                f"step {step.index} ({where}) holds {live_total} B = {self.weight_bytes} B weights + {listed}")
        if live_total <= self.capacity_bytes:
            text += (f"; that live set fits, the placement does not ({self.activation_bytes} B arena for a "
                     f"{self.arena.live_bytes(step.index)} B live set)")
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and per-layer figures (bytes)."""
        step = self.largest_live_step
        return {
            "soc": self.soc, "memory": self.memory, "capacity_bytes": self.capacity_bytes,
            "peak_bytes": self.peak_bytes, "weight_bytes": self.weight_bytes, "activation_bytes": self.activation_bytes,
            "peak_live_bytes": self.live_bytes(step.index), "largest_live_step": step.name, "fits": self.fits,
            "alignment_bytes": self.arena.alignment_bytes,
            "tensors": [{"name": t.name, "kind": t.kind, "size_bytes": t.size_bytes, "offset_bytes": o,
                         "first_step": t.first_step, "last_step": t.last_step}
                        for t, o in zip(self.arena.tensors, self.arena.offsets_bytes)],
            "layers": {s.name: {"module": s.module, "offloaded": s.offloaded, "step": s.index,
                                "live_bytes": self.live_bytes(s.index), "level_bytes": self.level_bytes(s.name)}
                       for s in self.steps if s.is_layer},
        }

    def __str__(self) -> str:
        head = (f"{self.soc} {self.memory}: peak {self.peak_bytes} B of {self.capacity_bytes} B "
                f"({'fits' if self.fits else 'DOES NOT FIT'}) = weights {self.weight_bytes} B + activation arena "
                f"{self.activation_bytes} B (largest live set {self.live_bytes(self.largest_live_step.index)} B "
                f"at {self.largest_live_step.name})")
        inner = sorted({m for s in self.steps for m, _ in s.inner_bytes})
        columns = ["step", "layer", "module", f"live {self.memory} B", f"own {self.memory} B", "weights B"] + \
            [f"{m} B" for m in inner]
        rows = []
        pending: list[StepMemory] = []

        def flush() -> None:
            if pending:
                span = f"{pending[0].index}-{pending[-1].index}" if len(pending) > 1 else str(pending[0].index)
                peak = max(self.live_bytes(s.index) for s in pending)
                rows.append([span, f"({len(pending)} host op{'s' if len(pending) > 1 else ''})", pending[0].module,
                             str(peak), "", str(sum(s.weight_bytes for s in pending))] + [""] * len(inner))
                pending.clear()

        for s in self.steps:
            if not s.is_layer:
                pending.append(s)
                continue
            flush()
            levels = self.level_bytes(s.name)
            rows.append([str(s.index), s.name, s.module, str(self.live_bytes(s.index)), str(levels[self.memory]),
                         str(s.weight_bytes)] + [str(levels[m]) if m in levels else "" for m in inner])
        flush()
        widths = [max(len(r[i]) for r in rows + [columns]) for i in range(len(columns))]
        lines = [head, "  ".join(c.ljust(w) for c, w in zip(columns, widths))]
        lines += ["  ".join(c.rjust(w) if i != 1 and i != 2 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                  for r in rows]
        return "\n".join(line.rstrip() for line in lines)


def build_plan(soc: str, memory: str, capacity_bytes: int, tensors: "list[LiveTensor]", steps: "list[StepMemory]",
               alignment_bytes: int = 1) -> MemoryPlan:
    """Place ``tensors`` (``mapper.arena.plan_arena``) and wrap the result with ``steps``.

    Every name in a step's ``tensors`` must be one of ``tensors`` (``ValueError`` otherwise)."""
    from mapper.arena import plan_arena

    names = {t.name for t in tensors}
    for step in steps:
        missing = [t for t in step.tensors if t not in names]
        if missing:
            raise ValueError(f"step {step.index} ({step.name}) names unknown tensors {missing}")
    return MemoryPlan(soc, memory, capacity_bytes, plan_arena(tensors, alignment_bytes), tuple(steps))
