"""What a newcomer trips over (issue 14): TF padding spellings, ZigZag files given to ``archs.load``,
a missing C compiler."""

from __future__ import annotations

from pathlib import Path

import pytest

import mapper
from archs.dims import LoopDim as D


@pytest.mark.parametrize("spelling", ["SAME", "Same", "same"])
def test_conv2d_accepts_tf_same_in_any_case(spelling):
    # TF "SAME", stride 2 on 8x8, 3x3 kernel: output 4x4, total pad (4-1)*2+3-8 = 1 per axis, all at the end
    layer = mapper.conv2d("c", input_size=(8, 8), in_channels=4, out_channels=8, kernel=3, stride=2, padding=spelling)
    assert layer.padding == (0, 1, 0, 1) and (layer.sizes[D.OY], layer.sizes[D.OX]) == (4, 4)


@pytest.mark.parametrize("build", [
    lambda p: mapper.conv2d("c", input_size=(8, 8), in_channels=4, out_channels=8, kernel=3, padding=p),
    lambda p: mapper.depthwise("c", input_size=(8, 8), channels=4, kernel=3, padding=p),
    lambda p: mapper.pool("c", input_size=(8, 8), channels=4, kernel=2, padding=p),
])
def test_every_builder_accepts_tf_valid_and_rejects_unknown_padding(build):
    assert build("VALID").padding == (0, 0, 0, 0)
    for bad, shown in (("full", "'full'"), (True, "True"), ((1, 2), "(1, 2)"), ((0, 0, 0, -1), "(0, 0, 0, -1)"),
                       ("x" * 500, "'xxxx")):
        with pytest.raises(mapper.LayerError) as info:
            build(bad)
        message = str(info.value)
        assert message.startswith("layer 'c': padding: expected 'same' or 'valid' (any case") and shown in message
        assert "int >= 0 or 4 ints >= 0" in message and len(message) < 250  # the quoted value is truncated


# --------------------------------------------------------------------------- ZigZag files given to archs.load

#: A small ZigZag 3.9.1 accelerator written by hand: a 4x8 array (D1 unrolls K, D2 unrolls C),
#: per-PE 64-bit output registers (32 instances), a 2 Mbit shared SRAM holding I1, I2 and O.
ZIGZAG_YAML = """\
name: tiny_zz
memories:
  rf_o:
    size: 64
    r_cost: 0.5
    w_cost: 0.5
    operands: [O]
    ports:
      - {name: r_port_1, type: read, bandwidth_min: 32, bandwidth_max: 32, allocation: ["O, tl", "O, th"]}
      - {name: w_port_1, type: write, bandwidth_min: 32, bandwidth_max: 32, allocation: ["O, fh", "O, fl"]}
    served_dimensions: []
  sram:
    size: 2097152
    r_cost: 16
    w_cost: 24
    operands: [I1, I2, O]
    ports:
      - name: rw_port_1
        type: read_write
        bandwidth_min: 128
        bandwidth_max: 128
        allocation: ["I1, tl", "I1, fh", "I2, tl", "I2, fh", "O, tl", "O, th", "O, fh", "O, fl"]
    served_dimensions: [D1, D2]
operational_array:
  unit_energy: 0.25
  dimensions: [D1, D2]
  sizes: [4, 8]
dataflows:
  D1: ["K, 4"]
  D2: ["C, 8"]
"""


def _zigzag_file(tmp_path):
    path = tmp_path / "tiny_zz.yaml"
    path.write_text(ZIGZAG_YAML)
    return path


def test_archs_load_detects_a_zigzag_accelerator(tmp_path):
    import archs

    path = _zigzag_file(tmp_path)
    assert archs.is_zigzag_file(path) and not archs.is_zigzag_file(archs.schema.BUILTIN_DIR / "gap9.yaml")
    soc = archs.load(path)
    assert soc.host == "host" and list(soc.modules) == ["host", "tiny_zz"]
    npu = soc.modules["tiny_zz"]
    # hand-derived: rf_o 64 bit x 32 instances / 8 = 256 B, 32 bit/cycle x 32 / 8 = 128 B/cycle,
    # 0.5 pJ per 32-bit word = 0.125 pJ/B; sram 2 Mbit x 1 instance = 262144 B at 128/8 = 16 B/cycle,
    # read 16 pJ / 16 B = 1 pJ/B, write 24 / 16 = 1.5 pJ/B; peak 4 x 8 = 32 MAC/cycle
    rf, sram = npu.memories
    assert (rf.name, rf.size_bytes, rf.read_bytes_per_cycle, rf.read_energy_pj_per_byte) == ("rf_o", 256, 128, 0.125)
    assert (sram.size_bytes, sram.read_bytes_per_cycle, sram.read_energy_pj_per_byte, sram.write_energy_pj_per_byte) == \
        (262144, 16, 1.0, 1.5)
    assert npu.compute.macs_per_cycle == 32 and npu.compute.energy_pj_per_mac == 0.25
    assert [(d.name, d.size, [u.value for u in d.unroll]) for d in npu.spatial] == [("D1", 4, ["K"]), ("D2", 8, ["C"])]


def test_archs_load_takes_an_explicit_zigzag_mapping(tmp_path):
    import archs

    mapping = tmp_path / "map.yaml"
    mapping.write_text("- name: default\n  spatial_mapping:\n    D1: [\"OX, 4\"]\n    D2: [\"K, 8\"]\n"
                       "  memory_operand_links: {O: O, W: I2, I: I1}\n")
    npu = archs.load(_zigzag_file(tmp_path), mapping=mapping).modules["tiny_zz"]
    assert [[u.value for u in d.unroll] for d in npu.spatial] == [["OX"], ["K"]]
    with pytest.raises(archs.ArchError, match="gap9: mapping= applies to ZigZag accelerator files only"):
        archs.load("gap9", mapping=mapping)


def test_a_broken_zigzag_file_gets_zigzag_errors_not_native_schema_errors(tmp_path):
    import archs

    path = _zigzag_file(tmp_path)
    path.write_text(path.read_text().replace("sizes: [4, 8]", "sizes: [4, -8]"))
    with pytest.raises(archs.ArchError) as info:
        archs.load(path)
    message = str(info.value)
    assert "tiny_zz.yaml: operational_array.sizes" in message and "modules" not in message and "clock_mhz" not in message


# --------------------------------------------------------------------------- the C compiler requirement

AD_MODEL = Path(__file__).resolve().parent.parent / "benchmarks" / "models" / "ad01_int8.tflite"


@pytest.mark.parametrize("env,says", [
    ({"CXX": "/nonexistent/bin/g++"}, "C compiler not found: CXX='/nonexistent/bin/g++' is not an executable"),
    ({"CC": "no-such-cc --flag"}, "C compiler not found: CC='no-such-cc --flag' is not an executable"),
    ({"PATH": ""}, "no C compiler found (CXX and CC unset, none of g++, gcc"),
])
def test_bridge_says_a_c_compiler_is_needed(env, says, monkeypatch, tmp_path):
    pytest.importorskip("tvm")
    import tvm_bridge

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.delenv("CC", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, str(tmp_path) if name == "PATH" else value)  # PATH: an empty directory
    with pytest.raises(tvm_bridge.BridgeError) as info:
        tvm_bridge.compile(AD_MODEL, "gap9")
    message = str(info.value)
    assert says in message and "apt-get install g++" in message and "set CXX" in message
