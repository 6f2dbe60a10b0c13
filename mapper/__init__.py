"""Loop-nest mapper: layers and layer graphs, spatial/temporal search, schedules.

Build layers with ``conv2d``, ``depthwise``, ``dense``, ``add``, ``pool``; map them with
``map_layer(layer, soc)`` or a whole graph with ``map_network(graph, soc)``; ``best_mappings`` gives
a layer's N best mappings overall. ``plan_arena`` places
tensors in one memory by liveness; ``MemoryPlan`` is a compiled model's static plan of its outermost
memory (``tvm_bridge`` builds it).
"""

from mapper.arena import ArenaError, ArenaPlan, LiveTensor, plan_arena
from mapper.graph import (
    POLICIES,
    GraphError,
    graph_from_dict,
    graph_to_dict,
    layer_graph,
    load_graph,
    map_network,
    ordered_layers,
    save_graph,
)
from mapper.memory_plan import MemoryPlan, MemoryPlanError, StepMemory
from mapper.onnx_shapes import from_onnx
from mapper.schedule import NetworkSchedule, Schedule, TileLevel
from mapper.search import (
    MappingError,
    map_layer,
    map_layer_accelerator_first,
    search_module,
)
from mapper.spatial import SpatialUnrolling, spatial_unrollings
from mapper.top_n import best_mappings
from mapper.workload import (
    Layer,
    LayerError,
    Precision,
    add,
    conv2d,
    dense,
    depthwise,
    pool,
    relevant_dims,
)
from mapper.zigzag_workload import from_zigzag_workload

__all__ = [
    "POLICIES", "GraphError", "graph_from_dict", "graph_to_dict", "layer_graph", "load_graph", "map_network",
    "ordered_layers", "save_graph", "NetworkSchedule", "Schedule", "TileLevel", "MappingError", "map_layer",
    "map_layer_accelerator_first", "search_module", "best_mappings", "SpatialUnrolling", "spatial_unrollings", "Layer",
    "LayerError", "Precision", "add", "conv2d", "dense", "depthwise", "pool", "relevant_dims",
    "from_zigzag_workload", "from_onnx", "ArenaError", "ArenaPlan", "LiveTensor", "plan_arena", "MemoryPlan",
    "MemoryPlanError", "StepMemory",
]
