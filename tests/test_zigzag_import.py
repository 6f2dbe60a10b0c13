"""ZigZag 3.9.1 input files that ZigZag itself accepts import the way ZigZag reads them: mapping files
naming generic loop dims (``D0``... of its GEMM examples), hints for array dims the accelerator lacks,
and arrays without ``unit_energy``; in-memory-computing files fail with one clear error. Every file
is generated here. The expected readings follow ZigZag 3.9.1's parser and spatial-mapping stages
(``MappingValidator.SCHEMA_SINGLE``, ``SpatialMapping.check_and_reduce``, ``SpatialMappingHint``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

import archs
import mapper
from archs import ArchError, LoopDim

D = LoopDim
LINKS = {"O": "O", "W": "I2", "I": "I1"}


def _port(name: str, kind: str, bits: int, allocation: list[str]) -> dict:
    return {"name": name, "type": kind, "bandwidth_min": bits, "bandwidth_max": bits, "allocation": allocation}


def accelerator(dims: int = 2, size: int = 4, **array) -> dict:
    """A small ZigZag accelerator: per-PE output registers, one shared buffer, DRAM."""
    oa_dims = [f"D{i + 1}" for i in range(dims)]
    return {
        "name": "acc",
        "memories": {
            "rf_o": {"size": 32, "r_cost": 0.02, "w_cost": 0.02, "area": 0, "latency": 1, "operands": ["O"],
                     "ports": [_port("r_port_1", "read", 32, ["O, tl", "O, th"]), _port("w_port_1", "write", 32, ["O, fh", "O, fl"])],
                     "served_dimensions": []},
            "buf": {"size": 65536 * 8, "r_cost": 10.0, "w_cost": 12.0, "area": 0, "latency": 1, "operands": ["I1", "I2", "O"],
                    "ports": [_port("rw_port_1", "read_write", 128, ["I1, tl", "I2, tl", "O, tl", "O, fl", "I1, fh", "I2, fh",
                                                                      "O, fh", "O, th"])],
                    "served_dimensions": oa_dims},
            "dram": {"size": 10**9, "r_cost": 100.0, "w_cost": 100.0, "area": 0, "latency": 1, "operands": ["I1", "I2", "O"],
                     "ports": [_port("rw_port_1", "read_write", 64, ["I1, tl", "I2, tl", "O, tl", "O, fl", "I1, fh", "I2, fh",
                                                                     "O, fh", "O, th"])],
                     "served_dimensions": oa_dims},
        },
        "operational_array": {"unit_energy": 0.04, "unit_area": 1, "dimensions": oa_dims, "sizes": [size] * dims, **array},
    }


def write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def unroll(soc: archs.SoC) -> list[tuple[str, tuple[LoopDim, ...]]]:
    return [(d.name, d.unroll) for d in soc.modules["acc"].spatial]


def test_gemm_style_mapping_with_generic_loop_dims_imports(tmp_path, caplog):
    # ZigZag's gemm_l1 mapping: its GEMM workloads name their loops D0, D1, D2. For a layer without those dims
    # ZigZag removes the unrollings ("User provided spatial unrolling D0 is not defined ...") and the array dims
    # they were on idle (ZigZag 3.9.1 maps a 16->16 3x3 conv on tpu_like with this mapping as {D1: {}, D2: {}}).
    hw = write(tmp_path, "gemm.yaml", accelerator(dims=3))
    gemm = [{"name": "default", "spatial_mapping": {"D1": ["D0, 4"], "D2": ["D2, 4"], "D3": ["D1, 4"]},
             "temporal_ordering": [["D1", "*"], ["D2", "*"], ["D0", "*"]], "memory_operand_links": LINKS}]
    with caplog.at_level(logging.WARNING, logger="archs.zigzag"):
        soc = archs.from_zigzag(hw, write(tmp_path, "gemm_map.yaml", gemm))
    assert unroll(soc) == [("D1", ()), ("D2", ()), ("D3", ())]
    warned = " ".join(r.message for r in caplog.records)
    assert "spatial_mapping.D1 names loop dim(s) ['D0']" in warned and "array dim D1 idles" in warned
    conv = mapper.conv2d("conv", input_size=(8, 8), in_channels=4, out_channels=4, kernel=3, padding="same")
    best = mapper.search_module(conv, soc.modules["acc"]).schedule
    assert all(entry["dim"] is None for entry in best.spatial.values())  # idle, as in ZigZag
    # a mapping mixing a generic name and one of ours keeps ours on that array dim
    mixed = [{"name": "default", "spatial_mapping": {"D1": ["K, 4"], "D2": ["D0, 4", "OX, 2"]}, "memory_operand_links": LINKS}]
    soc = archs.from_zigzag(hw, write(tmp_path, "mixed.yaml", mixed))
    assert unroll(soc) == [("D1", (D.K,)), ("D2", (D.OX,)), ("D3", tuple(LoopDim))]  # D3 not named: ZigZag's default hint


def test_hints_for_array_dims_the_accelerator_lacks_are_ignored(tmp_path, caplog):
    # ZigZag only looks up the hint of the accelerator's own array dims (SpatialMappingGeneratorStage)
    hw = write(tmp_path, "acc.yaml", accelerator(dims=2))
    hints = [{"name": "default", "spatial_mapping_hint": {"D1": ["K"], "D2": ["C", "FX"], "D3": ["OX"], "D4": ["OY"]},
              "memory_operand_links": LINKS},
             {"name": "Add", "spatial_mapping_hint": {"D1": ["G"], "D3": ["G"]}, "memory_operand_links": LINKS}]
    with caplog.at_level(logging.WARNING, logger="archs.zigzag"):
        soc = archs.from_zigzag(hw, write(tmp_path, "map.yaml", hints))
    # D1: default K, Add G; D2: default C, FX; Add has no D2 hint, so every loop dim (ZigZag's complete_with_defaults)
    assert unroll(soc) == [("D1", (D.K, D.G)), ("D2", (D.C, D.FX) + tuple(d for d in LoopDim if d not in (D.C, D.FX)))]
    assert any("spatial_mapping_hint for array dimension(s) ['D3', 'D4'] ignored" in r.message for r in caplog.records)
    # a hint naming only loop dims that are not ours is dropped (ZigZag's clear_invalid_hits): default hint
    generic = [{"name": "default", "spatial_mapping_hint": {"D1": ["D0"], "D2": ["K"]}, "memory_operand_links": LINKS}]
    assert unroll(archs.from_zigzag(hw, write(tmp_path, "generic.yaml", generic))) == [("D1", tuple(LoopDim)), ("D2", (D.K,))]


@pytest.mark.parametrize("entry, key, says", [
    # ZigZag 3.9.1 fails on these too: KeyError 'D3' in its spatial mapping stage, and its schema allows D1..D4 only
    ({"D1": ["K, 4"], "D3": ["OX, 2"]}, "spatial_mapping", "unrolls array dimension(s) ['D3'], which the accelerator does not have"),
    ({"D0": ["K, 4"]}, "[0].spatial_mapping.D0", "unknown array dimension; allowed: D1, D2, D3, D4"),
    ({"D1": ["K 4"]}, "[0].spatial_mapping.D1[0]", "must look like 'K, 16'"),
])
def test_mapping_errors_name_the_file_and_entry(tmp_path, entry, key, says):
    hw = write(tmp_path, "acc.yaml", accelerator(dims=2))
    path = write(tmp_path, "map.yaml", [{"name": "default", "spatial_mapping": entry, "memory_operand_links": LINKS}])
    with pytest.raises(ArchError) as err:
        archs.from_zigzag(hw, path)
    assert f"{path}: {key}: {says}" in str(err.value), str(err.value)


def test_unit_energy_is_optional(tmp_path, caplog):
    data = accelerator()
    del data["operational_array"]["unit_energy"]
    with caplog.at_level(logging.WARNING, logger="archs.zigzag"):
        soc = archs.from_zigzag(write(tmp_path, "acc.yaml", data))
    assert soc.modules["acc"].compute.energy_pj_per_mac == 0.0 and soc.modules["acc"].compute.macs_per_cycle == 16
    assert any("unit_energy not given" in r.message for r in caplog.records)


@pytest.mark.parametrize("imc_type, extra", [
    ("analog", {"adc_resolution": 8, "bit_serial_precision": 2, "input_precision": [8, 8]}),   # aimc.yaml-style
    ("digital", {"bit_serial_precision": 1, "input_precision": [8, 8]}),                      # dimc.yaml-style
])
def test_in_memory_computing_is_one_clear_error(tmp_path, imc_type, extra):
    data = accelerator()
    data["operational_array"] = {"is_imc": True, "imc_type": imc_type, "dimensions": ["D1", "D2"], "sizes": [4, 4], **extra}
    path = write(tmp_path, f"{imc_type}.yaml", data)  # no unit_energy: ZigZag's IMC arrays do not take one
    with pytest.raises(ArchError) as err:
        archs.from_zigzag(path)
    lines = [line for line in str(err.value).splitlines() if str(path) in line]
    assert lines == [f"  {path}: operational_array.is_imc: in-memory-computing arrays ({imc_type}) cannot be translated "
                     "(our cost model has no in-memory-computing model); allowed: false"], str(err.value)


def test_errors_quote_long_values_truncated(tmp_path):
    """A ZigZag file with a 2,000-element list in a checked field: the error names the field and
    quotes the value cut short, not 2,000 elements."""
    path = tmp_path / "long.yaml"
    path.write_text("name: x\noperational_array:\n  dimensions: [" + ", ".join(["D9"] * 2000) + "]\nmemories: {}\n")
    with pytest.raises(archs.ArchError) as info:
        archs.from_zigzag(path)
    message = str(info.value)
    assert "operational_array.dimensions" in message and "..." in message
    assert len(message) < 2000
