"""Hardware model: shipped SoCs load, and every kind of bad input gets one clear error."""

from __future__ import annotations

import copy
import sys
import time
import warnings

import numpy as np
import pytest
import yaml

import archs
import archs.kernel_hooks
import archs.schema
from archs import ArchError, LoopDim, Operand
from archs.kernels import diana_digital, ne16, pulp_nn_cluster
from mapper import Precision, conv2d

MINIMAL = {
    "name": "tiny",
    "clock_mhz": 100,
    "host": "cpu",
    "modules": [
        {
            "name": "cpu",
            "memories": [{"name": "ram", "size_bytes": 1 << 20, "operands": ["I", "W", "O"],
                          "read_bytes_per_cycle": 4, "write_bytes_per_cycle": 4}],
            "compute": {"macs_per_cycle": 1},
        },
        {
            "name": "acc",
            "spatial": [{"name": "cols", "size": 4, "unroll": ["K"]}],
            "accepts": [{"kind": "conv2d"}],
            "memories": [
                {"name": "l1", "size_bytes": 4096, "operands": ["I", "W", "O"], "read_bytes_per_cycle": 8,
                 "write_bytes_per_cycle": 8},
                {"name": "l2", "size_bytes": 1 << 20, "operands": ["I", "W", "O"], "read_bytes_per_cycle": 8,
                 "write_bytes_per_cycle": 8},
            ],
            "compute": {"macs_per_cycle": 4},
        },
    ],
}


@pytest.mark.parametrize("name", ["gap9", "diana", "os32_example"])
def test_builtin_socs_load(name):
    soc = archs.load(name)
    assert soc.host in soc.modules and soc.modules[soc.host].is_host
    for module in soc.modules.values():
        for operand in Operand:
            assert module.chain(operand)[-1] == len(module.memories) - 1  # outermost holds everything


def test_shipped_numbers_match_the_reference():
    gap9, diana = archs.load("gap9"), archs.load("diana")
    assert gap9.clock_mhz == 370 and diana.clock_mhz == 260
    cluster = gap9.modules["cluster"]
    assert cluster.memories[0].double_buffering and not gap9.modules["ne16"].memories[0].double_buffering
    assert cluster.memories[0].transfer_fixed_cycles == 920 and cluster.tile_overhead_cycles == 500
    digital = diana.modules["digital"]
    assert digital.array_size == 256
    assert [m.name for m in digital.memories] == ["act_mem", "weight_mem", "l2"]
    assert digital.chain(Operand.W) == (1, 2) and digital.chain(Operand.I) == (0, 2)


def test_minimal_dict_builds():
    soc = archs.from_dict(copy.deepcopy(MINIMAL))
    assert list(soc.modules) == ["cpu", "acc"]
    assert soc.modules["acc"].spatial[0].unroll == (LoopDim.K,)


def _error(data) -> ArchError:
    with pytest.raises(ArchError) as info:
        archs.from_dict(data, "tiny.yaml")
    return info.value


def _mutated(path, value):
    data = copy.deepcopy(MINIMAL)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    "path, value, where, says",
    [
        (("modules", 1, "memories", 0, "sise_bytes"), 5, "modules[1].memories[0].sise_bytes", "unknown key; allowed: name, size_bytes"),
        (("modules", 1, "memories", 0, "size_bytes"), -5, "modules[1].memories[0].size_bytes", "integer >= 1"),
        (("modules", 1, "memories", 0, "size_bytes"), "big", "modules[1].memories[0].size_bytes", "integer >= 1"),
        (("modules", 1, "memories", 0, "operands"), [], "modules[1].memories[0].operands", "non-empty list"),
        (("modules", 1, "memories", 0, "operands"), ["X"], "modules[1].memories[0].operands[0]", "one of I, W, O"),
        (("modules", 1, "spatial", 0, "unroll"), ["Q"], "modules[1].spatial[0].unroll[0]", "one of B, K, C, OY"),
        (("modules", 1, "accepts", 0, "kind"), "softmax", "modules[1].accepts[0].kind", "one of conv2d, depthwise"),
        (("modules", 1, "compute", "macs_per_cycle"), 0, "modules[1].compute.macs_per_cycle", "number > 0"),
        (("modules", 1, "memories", 0, "double_buffering"), "yes", "modules[1].memories[0].double_buffering", "true or false"),
        (("clock_mhz",), KeyError, "clock_mhz", "required key is missing"),
        (("host",), "nope", "host", "names no module; modules are: cpu, acc"),
        (("modules", 1, "compute", "kernel"), "archs.kernels:nothing", "modules[1].compute.kernel", "no function 'nothing'"),
        (("modules", 1, "compute", "kernel"), "no_such_pkg:f", "modules[1].compute.kernel", "is not allowed for kernel hooks"),
        (("modules", 1, "compute", "kernel"), "archs.no_such_module:f", "modules[1].compute.kernel", "cannot import module"),
        (("modules", 1, "memories", 1, "operands"), ["I", "O"], "modules[1].memories[1].operands", "must hold I, W and O"),
        (("modules", 1, "accepts"), KeyError, "modules[1].accepts", "must list the layers it accepts"),
        (("modules", 0, "accepts"), [{"kind": "dense"}], "modules[0].accepts", "host accepts every layer"),
        (("modules", 1, "accepts", 0, "padding"), "sometimes", "modules[1].accepts[0].padding", "one of any, symmetric, none"),
        (("modules", 1, "accepts", 0, "precision"), {"psum": [8]}, "modules[1].accepts[0].precision.psum", "unknown role"),
    ],
)
def test_each_bad_field_is_named(path, value, where, says):
    err = _error(_mutated(path, value))
    text = str(err)
    assert f"tiny.yaml: {where}: " in text, text
    assert says in text, text


def test_all_errors_reported_at_once():
    data = _mutated(("modules", 1, "memories", 0, "size_bytes"), -1)
    data["modules"][1]["compute"]["macs_per_cycle"] = -3
    err = _error(data)
    paths = [p for p, _ in err.errors]
    assert "modules[1].memories[0].size_bytes" in paths and "modules[1].compute.macs_per_cycle" in paths


def test_duplicate_module_and_memory_names():
    data = copy.deepcopy(MINIMAL)
    data["modules"][1]["name"] = "cpu"
    assert "duplicate module name 'cpu'" in str(_error(data))
    data = copy.deepcopy(MINIMAL)
    data["modules"][1]["memories"][1]["name"] = "l1"
    assert "modules[1].memories[1].name: duplicate memory name 'l1'" in str(_error(data))


def test_yaml_duplicate_key_and_malformed_text(tmp_path):
    text = yaml.safe_dump(MINIMAL, sort_keys=False).replace("clock_mhz: 100", "clock_mhz: 100\nclock_mhz: 200")
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ArchError, match=r"dup\.yaml: line \d+, column \d+: malformed YAML: duplicate key 'clock_mhz'"):
        archs.load(path)
    path.write_text("name: [unclosed\n")
    with pytest.raises(ArchError, match="malformed YAML"):
        archs.load(path)


def test_unknown_name_lists_builtins():
    with pytest.raises(ArchError, match="built-ins are: diana, gap9, os32_example"):
        archs.load("gap10")


def test_user_file_round_trip(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    soc = archs.load(str(path))
    assert soc.name == "tiny" and soc.source == str(path)


# --------------------------------------------------------------------------- kernel hooks by hand


class _Layer:
    def __init__(self, kind, fy=3, fx=3, stride=(1, 1), weight_bits=8):
        self.kind = kind
        self.sizes = {LoopDim.FY: fy, LoopDim.FX: fx}
        self.stride = stride
        self.dilation = (1, 1)
        self.precision = Precision(weight=weight_bits)


def _tile(**extents):
    return {d: np.array([extents.get(d.value, 1)]) for d in LoopDim}


def test_ne16_hook_by_hand():
    # 3x3, 32 out x 16 in channels over one 3x3 output patch: n_in=1, one body iteration of k=32:
    # load 31 + w_offset 6 + matrixvec (6 + 32*8) + 2 = 301; + normquant (9+32) + streamout 13 = 355.
    assert ne16(_tile(K=32, C=16, OY=3, OX=3, FY=3, FX=3), _Layer("conv2d"))[0] == 355
    # k remainder only (K=16): 31 + 6 + (6 + 16*8) + 2 + (9+16) + 13 = 211 per 3x3 patch, 121 patches in 32x32.
    assert ne16(_tile(K=16, C=16, OY=32, OX=32, FY=3, FX=3), _Layer("conv2d"))[0] == 121 * 211
    # 1x1: matrixvec = 6 + k; load 19: 19 + 6 + 38 + 2 + 41 + 13 = 119 for K=32, C=16.
    assert ne16(_tile(K=32, C=16, OY=3, OX=3), _Layer("conv2d", 1, 1))[0] == 119
    # depthwise: k_body 16, w_offset 6 + k: 31 + 22 + (6 + 128) + 2 + 25 + 13 = 227.
    assert ne16(_tile(G=16, OY=3, OX=3, FY=3, FX=3), _Layer("depthwise"))[0] == 227


def test_cluster_hook_by_hand():
    # conv, tile 8x2 outputs, K=4, C=4, 3x3: it=1, im2col 3*3*4*2=72, matmul 15+ceil(36/4)*14=141.
    assert pulp_nn_cluster(_tile(K=4, C=4, OY=8, OX=2, FY=3, FX=3), _Layer("conv2d"))[0] == 72 + 141
    # 1x1 has no im2col: 15 + ceil(16/4)*14 = 71 per 4 output channels, 2 groups of 4.
    assert pulp_nn_cluster(_tile(K=8, C=16, OY=8, OX=2), _Layer("conv2d", 1, 1))[0] == 2 * 71
    # dense: ceil(C/2) * ceil(K/4).
    assert pulp_nn_cluster(_tile(K=10, C=64), _Layer("dense", 1, 1))[0] == 32 * 3


def test_diana_hook_by_hand():
    # one output row, one 16x16 (OX x K) block, C=16, 3x3: 16*9 + 2*16*3 + 23 = 263.
    assert diana_digital(_tile(K=16, C=16, OY=1, OX=16, FY=3, FX=3), _Layer("conv2d"))[0] == 263
    # 4 rows, OX=20 -> 2 column blocks, K=20 -> 2 row blocks.
    assert diana_digital(_tile(K=20, C=16, OY=4, OX=20, FY=3, FX=3), _Layer("conv2d"))[0] == 4 * 2 * 2 * 263


# --------------------------------------------------------------------------- hardening: values, size, hooks

FLOAT_FIELDS = [
    ("clock_mhz",),
    ("modules", 1, "memories", 0, "read_bytes_per_cycle"),
    ("modules", 1, "memories", 0, "write_bytes_per_cycle"),
    ("modules", 1, "memories", 0, "transfer_fixed_cycles"),
    ("modules", 1, "memories", 0, "read_energy_pj_per_byte"),
    ("modules", 1, "memories", 0, "write_energy_pj_per_byte"),
    ("modules", 1, "compute", "macs_per_cycle"),
    ("modules", 1, "compute", "energy_pj_per_mac"),
    ("modules", 1, "tile_overhead_cycles"),
]


def _key_path(path) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


@pytest.mark.parametrize("path", FLOAT_FIELDS, ids=_key_path)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_numbers_rejected_in_every_float_field(path, value):
    text = str(_error(_mutated(path, value)))
    assert f"tiny.yaml: {_key_path(path)}: must be a finite number" in text, text
    assert f"got {value!r}" in text, text


def test_yaml_nan_and_inf_spellings_rejected():
    text = yaml.safe_dump(MINIMAL, sort_keys=False).replace("clock_mhz: 100", "clock_mhz: .nan")
    with pytest.raises(ArchError, match=r"clock_mhz: must be a finite number > 0.0, got nan"):
        archs.from_yaml_text(text, "nan.yaml")
    text = yaml.safe_dump(MINIMAL, sort_keys=False).replace("clock_mhz: 100", "clock_mhz: .inf")
    with pytest.raises(ArchError, match=r"clock_mhz: must be a finite number > 0.0, got inf"):
        archs.from_yaml_text(text, "inf.yaml")


@pytest.mark.parametrize(
    "path, value, where, says",
    [
        (("modules", 1, "accepts", 0, "precision"), {"input": [1000]}, "accepts[0].precision.input[0]", "an integer in 1..64, got 1000"),
        (("modules", 1, "accepts", 0, "precision"), {"weight": [0]}, "accepts[0].precision.weight[0]", "an integer in 1..64, got 0"),
        (("modules", 1, "accepts", 0, "precision"), {"output": [True]}, "accepts[0].precision.output[0]", "an integer in 1..64, got True"),
        (("modules", 1, "accepts", 0, "kernel_sizes"), [[True, True]], "accepts[0].kernel_sizes[0]",
         "a [FY, FX] pair of positive integers"),
        (("modules", 1, "accepts", 0, "strides"), [True], "accepts[0].strides[0]", "an integer >= 1, got True"),
        (("modules", 1, "memories", 0, "size_bytes"), True, "memories[0].size_bytes", "an integer >= 1, got True"),
        (("modules", 1, "spatial", 0, "size"), False, "spatial[0].size", "an integer >= 1, got False"),
    ],
)
def test_bits_range_and_bools_where_ints_expected(path, value, where, says):
    text = str(_error(_mutated(path, value)))
    assert f"tiny.yaml: modules[1].{where}: must be {says}" in text, text


def test_huge_numbers_rejected_without_overflow():
    text = str(_error(_mutated(("modules", 1, "memories", 0, "size_bytes"), 10**400)))
    assert "modules[1].memories[0].size_bytes: must be an integer <= 2^53 (9007199254740992), got 1000000" in text, text
    for path in (("clock_mhz",), ("modules", 1, "compute", "macs_per_cycle")):
        text = str(_error(_mutated(path, 10**400)))
        assert f"{_key_path(path)}: must be a finite number > 0.0, got 1000000" in text, text
    text = str(_error(_mutated(("modules", 1, "tile_overhead_cycles"), -(10**400))))
    assert "modules[1].tile_overhead_cycles: must be a finite number >= 0.0, got -1000000" in text, text


def test_quoted_values_are_truncated():
    text = str(_error(_mutated(("modules", 1, "memories", 0, "name"), ["x" * 10_000] * 1000)))
    assert len(text) < 400, len(text)
    assert "modules[1].memories[0].name: must be a non-empty string, got ['xxx" in text


def test_alias_bomb_fails_fast():
    """A 400-byte billion-laughs YAML (9^9 leaves) in checked fields: a clear error within seconds."""
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        levels.append(f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, "
                      f"*{prev}, *{prev}, *{prev}]")
    bomb = "bomb:\n" + "\n".join("  " + line for line in levels) + "\nname: *i\nclock_mhz: *i\nhost: *i\nmodules: *i\n"
    assert len(bomb) < 600
    start = time.perf_counter()
    with pytest.raises(ArchError) as info:
        archs.from_yaml_text(bomb, "bomb.yaml")
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, elapsed
    text = str(info.value)
    assert "bomb.yaml: bomb: unknown key" in text and "bomb.yaml: name: must be a non-empty string, got [[[" in text
    assert len(text) < 20_000


def test_unhashable_yaml_key_is_a_clear_error():
    with pytest.raises(ArchError, match=r"key\.yaml: line 1, column 3: malformed YAML: a mapping key must be a scalar"):
        archs.from_yaml_text("? [1, 2]\n: 3\n", "key.yaml")


def test_huge_files_refused_before_parsing(tmp_path):
    big = "# padding\n" * (archs.schema.MAX_YAML_BYTES // 10 + 1) + yaml.safe_dump(MINIMAL)
    start = time.perf_counter()
    with pytest.raises(ArchError, match=rf"big\.yaml: file is \d+ bytes; a hardware description may have at most "
                                        rf"{archs.schema.MAX_YAML_BYTES} bytes"):
        archs.from_yaml_text(big, "big.yaml")
    path = tmp_path / "big.yaml"
    path.write_text(big * 40)  # ~10 MB
    with pytest.raises(ArchError, match=r"big\.yaml: file is \d+ bytes"):
        archs.load(path)
    assert time.perf_counter() - start < 3.0


@pytest.mark.parametrize("name", ["gap9", "diana", "os32_example"])
def test_shipped_socs_load_without_warnings(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        archs.load(name)


def test_inner_memory_larger_than_outer_warns():
    data = _mutated(("modules", 1, "memories", 0, "size_bytes"), 2 << 20)  # l1 2 MiB above... below a 1 MiB l2
    with pytest.warns(archs.ArchWarning, match=r"tiny\.yaml: modules\[1\]\.memories\[0\]\.size_bytes: memory 'l1' "
                                              r"\(2097152 bytes\) is larger than 'l2' \(1048576 bytes\) above it, which "
                                              r"holds I, W, O too"):
        archs.from_dict(data, "tiny.yaml")
    # only along an operand's chain: a big weight memory beside a small activation memory is fine
    data = copy.deepcopy(MINIMAL)
    data["modules"][1]["memories"] = [
        {"name": "act", "size_bytes": 1024, "operands": ["I", "O"], "read_bytes_per_cycle": 8, "write_bytes_per_cycle": 8},
        {"name": "wmem", "size_bytes": 8192, "operands": ["W"], "read_bytes_per_cycle": 8, "write_bytes_per_cycle": 8},
        {"name": "l2", "size_bytes": 4096, "operands": ["I", "W", "O"], "read_bytes_per_cycle": 8, "write_bytes_per_cycle": 8},
    ]
    with pytest.warns(archs.ArchWarning) as record:
        archs.from_dict(data, "tiny.yaml")
    assert len(record) == 1 and "memories[1].size_bytes: memory 'wmem'" in str(record[0].message)


# kernel hooks: only archs.* and allowed modules are imported; the signature and a probe run are checked

HOOKS = '''
import numpy as np
from archs.dims import LoopDim as D

def fast(tile, layer):            # 1 cycle per call: implies (almost) any MAC rate
    return np.ones(len(tile[D.K]))

def exact(tile, layer):           # MACs / 4: exactly the peak of MINIMAL's accelerator
    macs = np.prod(np.stack([tile[d] for d in D]), axis=0)
    return macs / 4.0

def nan(tile, layer):
    return np.full(len(tile[D.K]), np.nan)

def scalar(tile, layer):
    return 5.0

def broken(tile, layer):
    return tile["no such key"]

def one_argument(tile):
    return tile
'''


@pytest.fixture
def hook_module(tmp_path, monkeypatch):
    """A user module of hooks on sys.path (a fresh name per test) and a clean allowlist."""
    name = f"user_hooks_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(HOOKS + f"\nopen({str(tmp_path / 'imported')!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(archs.kernel_hooks, "_ALLOWED", set())
    yield name
    sys.modules.pop(name, None)


def _with_hook(reference: str) -> dict:
    return _mutated(("modules", 1, "compute", "kernel"), reference)


def test_hook_modules_outside_archs_are_not_imported_unless_allowed(hook_module, tmp_path):
    text = str(_error(_with_hook(f"{hook_module}:exact")))
    assert f"modules[1].compute.kernel: module '{hook_module}' is not allowed for kernel hooks" in text, text
    assert "archs.allow_kernel_module" in text
    assert not (tmp_path / "imported").exists() and hook_module not in sys.modules  # never imported
    assert "modules[1].compute.kernel: module 'os' is not allowed" in str(_error(_with_hook("os:getcwd")))
    archs.allow_kernel_module(hook_module)
    assert archs.allowed_kernel_modules() == (hook_module,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        soc = archs.from_dict(_with_hook(f"{hook_module}:exact"))
    assert soc.modules["acc"].compute.kernel_hook is not None and (tmp_path / "imported").exists()


def test_hook_signature_checked():
    text = str(_error(_with_hook("archs.schema:builtin_names")))  # importable and callable, takes no (tile, layer)
    assert "modules[1].compute.kernel: 'archs.schema:builtin_names' must accept (tile, layer), its signature is () -> " in text


@pytest.mark.parametrize(
    "function, says",
    [
        ("one_argument", "must accept (tile, layer), its signature is (tile)"),
        ("nan", "returned nan cycles on a probe conv2d tile (allowed: finite, >= 0)"),
        ("scalar", "must return one cycle count per tile (shape (64,)), returned shape ()"),
        ("broken", "raised KeyError on a probe conv2d tile"),
    ],
)
def test_bad_hooks_are_errors_at_load(hook_module, function, says):
    archs.allow_kernel_module(hook_module)
    text = str(_error(_with_hook(f"{hook_module}:{function}")))
    assert "tiny.yaml: modules[1].compute.kernel: " in text and says in text, text


def test_hook_faster_than_the_declared_peak_warns(hook_module):
    archs.allow_kernel_module(hook_module)
    # largest probe: conv2d K=64, C=64, OY=8, OX=16 with a 3x3 kernel: 64*64*8*16*9 = 4718592 MACs in 1 cycle, peak 4
    with pytest.warns(archs.ArchWarning, match=r"tiny\.yaml: modules\[1\]\.compute\.kernel: the hook implies 4718592 "
                                              r"MACs/cycle on a probe conv2d tile K=64, C=64, OY=8, OX=16, FY=3, FX=3: 4718592 MACs "
                                              r"in 1 cycles, above the declared peak compute\.macs_per_cycle = 4"):
        archs.from_dict(_with_hook(f"{hook_module}:fast"), "tiny.yaml")


@pytest.mark.parametrize("name", ["gap9", "diana", "os32_example", "zigzag:tpu_like", "zigzag:meta_prototype"])
def test_to_dict_round_trips(name):
    from archs.zigzag import zigzag_example

    soc = archs.from_zigzag(zigzag_example(name[7:])) if name.startswith("zigzag:") else archs.load(name)
    data = archs.to_dict(soc)
    again = archs.from_dict(yaml.safe_load(yaml.safe_dump(data, sort_keys=True)), soc.source)
    assert again == soc and list(again.modules) == list(soc.modules)
    assert [m.compute.kernel_hook for m in again.modules.values()] == [m.compute.kernel_hook for m in soc.modules.values()]


def test_hook_reading_an_attribute_the_probe_lacks_warns_instead_of_failing(hook_module, tmp_path):
    path = tmp_path / f"{hook_module}.py"
    path.write_text(path.read_text() + "\ndef quant_reader(tile, layer):\n    return np.ones(len(tile[D.K])) * layer.quant\n")
    archs.allow_kernel_module(hook_module)
    with pytest.warns(archs.ArchWarning, match=r"modules\[1\]\.compute\.kernel: could not be checked on probe tiles \(it reads "
                                              r"a layer attribute the probe lacks: .*quant.*; the probe has name, kind"):
        soc = archs.from_dict(_with_hook(f"{hook_module}:quant_reader"), "tiny.yaml")
    assert soc.modules["acc"].compute.kernel == f"{hook_module}:quant_reader"


def test_probe_layer_geometry_matches_mapper_layer():
    layer = conv2d("c", input_size=(9, 7), in_channels=3, out_channels=4, kernel=3, stride=2, padding="valid")
    probe = archs.kernel_hooks.ProbeLayer("c", "conv2d", dict(layer.sizes), layer.stride, layer.dilation)
    assert (probe.kernel_extent, probe.input_size, probe.macs) == ((3, 3), (9, 7), 4 * 3 * 4 * 3 * 3 * 3)
