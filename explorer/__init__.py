"""The architecture researcher's workflow on top of the mapper: the ``match-mapper`` command line
(``map``, ``explain``, ``validate``, ``compare``, ``sweep``; also ``python -m explorer``) and the
functions behind it.

It sits above ``tvm_bridge`` (MODEL files go through the bridge when TVM is installed), so it is its
own package: ``mapper`` never imports it. ``main(argv)`` runs a command and returns its exit status
(0 ok, 2 bad input, 1 internal error).
"""

from explorer.breakdown import CycleBreakdown, LevelTraffic, cycle_breakdown, level_traffic
from explorer.cli import main
from explorer.cmd_explain import explain
from explorer.inputs import InputError, load_arch, load_model
from explorer.layerspec import parse_layer_spec
from explorer.pareto import pareto_front
from explorer.sweep_run import run_sweep
from explorer.sweep_spec import SweepSpec, load_spec

__all__ = [
    "CycleBreakdown", "LevelTraffic", "cycle_breakdown", "level_traffic", "main", "explain", "InputError", "load_arch",
    "load_model", "parse_layer_spec", "pareto_front", "run_sweep", "SweepSpec", "load_spec",
]
