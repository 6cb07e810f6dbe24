"""The roofline beside every time (issue 15): achieved rates and fractions of device peaks."""

from __future__ import annotations

import pytest

from perfsuite import _roofline


def test_roofline_on_a_known_device_and_an_unknown_one(monkeypatch):
    counts = {
        "values": {"xla_flops": 10**12, "xla_bytes_accessed": 10**9},
        "info": {"matmul_dtype": "bf16"},
    }
    monkeypatch.setattr(_roofline, "current_device", lambda framework: "NVIDIA H200")
    r = _roofline.roofline(counts, 2e-3)
    assert r["peak_device"] == "H200"
    assert r["flops_per_s"] == pytest.approx(5e14)
    assert r["mfu"] == pytest.approx(5e14 / 989.4e12)
    assert r["bandwidth_utilisation"] == pytest.approx(5e11 / 4.8e12)
    assert "MFU bf16" in _roofline.words(r)
    monkeypatch.setattr(_roofline, "current_device", lambda framework: None)
    r = _roofline.roofline(counts, 2e-3)
    assert "mfu" not in r
    assert "no peak known for the CPU" in r["note"]
    assert _roofline.roofline({"values": {"python_calls": 3}}, 1e-3) is None


def test_model_bytes_above_the_bandwidth_are_said_to_be_an_upper_bound(monkeypatch):
    # H200, BERT-base 1x8 train step: XLA's bytes_accessed over the step's time read 7.88 TB/s,
    # "164% of bw" with nothing beside it, as if the step beat the HBM.
    counts = {"values": {"xla_flops": 3.06e10, "xla_bytes_accessed": 4.87e10}, "info": {}}
    monkeypatch.setattr(_roofline, "current_device", lambda framework: "NVIDIA H200")
    r = _roofline.roofline(counts, 6.18e-3)
    assert r["bandwidth_utilisation"] == pytest.approx(4.87e10 / 6.18e-3 / 4.8e12)
    assert "not DRAM bytes" in r["bytes_note"]
    assert "of bw model bytes, above peak" in _roofline.words(r)
    below = _roofline.roofline(counts, 6.18e-2)
    assert "bytes_note" not in below
    assert "above peak" not in _roofline.words(below)


def test_roofline_takes_perfsuites_matmul_count_where_xla_reads_a_gemm_as_nothing(monkeypatch):
    # The H200 defect: an 8192^3 bf16 matmul, XLA's cost model 0 FLOPs, 1.756 ms a call.
    counts = {
        "values": {"xla_flops": 0, "matmul_flops": 2 * 8192**3, "xla_bytes_accessed": 0},
        "info": {"matmul_dtype": "bf16"},
    }
    monkeypatch.setattr(_roofline, "current_device", lambda framework: "NVIDIA H200")
    r = _roofline.roofline(counts, 1.756e-3)
    assert r["flops_source"] == "matmul_flops"
    assert r["flops_per_s"] == pytest.approx(2 * 8192**3 / 1.756e-3)
    assert 0.5 < r["mfu"] < 1.0
    # Where XLA counts more (elementwise work besides the matmuls), XLA's number stands.
    counts["values"]["xla_flops"] = 3 * 8192**3
    assert _roofline.roofline(counts, 1.756e-3)["flops_source"] == "xla_flops"


def test_roofline_judges_default_precision_f32_against_the_tf32_peak(monkeypatch):
    counts = {"values": {"xla_flops": 10**12}, "info": {"matmul_dtype": "f32"}}
    monkeypatch.setattr(_roofline, "current_device", lambda framework: "NVIDIA H200")
    assert _roofline.roofline(counts, 1.0)["peak_flops_per_s"] == pytest.approx(66.9e12)
    counts["info"]["f32_matmul_precision"] = "default"
    r = _roofline.roofline(counts, 1.0)
    assert (r["dtype"], r["peak_flops_per_s"]) == ("tf32", pytest.approx(494.7e12))
    # A device without TF32 (a TPU) keeps f32 and, publishing no f32 peak, gives no MFU.
    monkeypatch.setattr(_roofline, "current_device", lambda framework: "TPU v4")
    assert _roofline.roofline(counts, 1.0)["mfu"] is None


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NVIDIA H200", "H200"),
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM"),
        ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
        ("NVIDIA L4", "L4"),
        ("TPU v4", "TPU v4"),
        ("TPU v5 lite", "TPU v5e"),
        ("TPU v5", "TPU v5p"),
        ("cpu", None),
    ],
)
def test_device_names_map_to_peaks(name, key):
    assert _roofline.peak_key(name) == key
