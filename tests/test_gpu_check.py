"""`python -m benchmark check-gpu`: dry runs on the CPU at tiny sizes write the published reports' keys; without a GPU
and without `--device cpu` it refuses; the CUDA runs only where CUDA is available."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.tools.gpu_check import VARIANTS

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "results" / "gpu"
TINY = ["--model", "tinycnn", "--train-size", "256", "--test-size", "128", "--epochs", "1"]
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def keys(report: dict) -> dict:
    """The report's key tree (the values dropped), to compare with a published report's."""
    return {k: keys(v) if isinstance(v, dict) else None for k, v in report.items()}


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def run(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "report.json"
    assert main(["check-gpu", *args, "--out", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.fixture
def parity_npz(tmp_path: Path, cifar_small) -> str:
    """A small stand-in for the parity file (real CIFAR-10 images; the command uses a file that exists as it is)."""
    path = tmp_path / "parity.npz"
    x, y = cifar_small.images.numpy(), cifar_small.labels.numpy()
    np.savez(path, train_x=x, train_y=y, test_x=x[:100], test_y=y[:100])
    return str(path)


def check_gpu_report(report: dict, cuda: bool) -> None:
    published = json.loads((PUBLISHED / "h200-gpu_check.json").read_text())
    assert keys(report).keys() == keys(published).keys()
    for label, *_ in VARIANTS:
        row = report[label]
        assert row.keys() == published[label].keys()
        assert positive(row["images_per_second"]) and positive(row["wall_s"]), row
        assert positive(row["peak_memory_gib"]) if cuda else row["peak_memory_gib"] is None
        assert 0 <= row["test_acc"] <= 1  # real CIFAR-10: accuracy reported
    assert positive(report["quick_cell_s"])
    assert positive(report["adv_train_cost_factor"]) and report["adv_train_cost_factor"] > 1
    parity = report["graph_parity"]
    assert keys(parity) == keys(published["graph_parity"])
    for label in ("CUDA graph", "no graph"):
        assert 0 <= parity[label]["test_acc"] <= 1 and positive(parity[label]["images_per_second"])
    # The own-step countermeasures as they run; without and with a graph only where graphs exist (CUDA).
    own = ["adv_train", "ueraser", *(["adv_train, no graph"] if cuda else [])]
    assert sorted(label for label in report["own_step"] if "--jobs" not in label) == sorted(own)
    for label in own:
        assert report["own_step"][label].keys() == published["own_step"][label].keys()
        assert positive(report["own_step"][label]["images_per_second"])
    assert report["own_step"]["adv_train"]["cuda_graph"] is cuda and not report["own_step"]["ueraser"]["cuda_graph"]
    assert sorted(report["fused"]) == (["1", "1, no graph"] if cuda else ["1"])  # one fused victim
    for label in report["fused"]:
        row = report["fused"][label]
        assert row.keys() == published["fused"][label].keys() and row["victims"] == 1
        assert positive(row["images_per_second"]) and row["cuda_graph"] is (cuda and label == "1")
    assert positive(report["flops_per_training_image"]) and positive(report["bf16_matmul_tflops"])
    for row in [*(report[label] for label, *_ in VARIANTS), *report["fused"].values()]:
        assert positive(row["peak_fraction"])
    assert keys(report["projection"]) == keys(published["projection"])
    assert all(positive(v) for v in report["projection"].values() if not isinstance(v, str)), report["projection"]


def test_cpu_dry_run_writes_the_published_keys(tmp_path, data_root, parity_npz, capsys):
    report = run(tmp_path, "--device", "cpu", *TINY, "--jobs", "", "--fused", "1", "--data-root", data_root,
                 "--parity-npz", parity_npz, "--parity-epochs", "1")
    assert report["device"] == "cpu" and report["data"] == "CIFAR-10" and report["epochs"] == 1
    check_gpu_report(report, cuda=False)
    assert not any(report[label]["cuda_graph"] for label, *_ in VARIANTS)  # no graphs on the CPU
    assert report["concurrent"] == {} and report["projection"]["standard_via"] == "alone"
    assert not any(label.startswith("adv_train, --jobs") for label in report["own_step"])
    assert "adv_train" in capsys.readouterr().out


def test_cpu_dry_run_of_concurrent_cells(tmp_path, data_root):
    from benchmark.tools.gpu_check import concurrent_throughput

    published = json.loads((PUBLISHED / "h200-gpu_check.json").read_text())
    row = concurrent_throughput(torch.device("cpu"), 2, data_root, 256, 128, 1, "tinycnn", "adv_train")
    assert row.keys() == published["own_step"]["adv_train, --jobs 4"].keys()
    assert row.keys() == published["concurrent"]["4"].keys() - {"peak_fraction"}  # check_gpu adds the fraction
    assert positive(row["images_per_second"]) and positive(row["wall_s"]) and row["cuda_graph"] is False


def check_dh_report(report: dict) -> None:
    published = json.loads((PUBLISHED / "h200-dh_gpu_check.json").read_text())
    assert keys(report) == keys(published)
    for name in ("dh", "dh-8"):
        row = report[name]
        assert positive(row["seconds"]) and positive(row["revealed_psnr"]) and positive(row["linf_255"])
        assert all(positive(v) for v in row["feature_spread"].values()), row
    assert report["dh-8"]["linf_255"] <= 8
    paper = report["paper_network"]
    assert all(positive(paper[k]) for k in ("step_ms", "projected_training_min", "generation_images", "generation_s"))
    assert all(math.isfinite(v) and v >= 0 for v in paper["final_losses"].values())


def test_cpu_dry_run_of_dh(tmp_path):
    report = run(tmp_path, "--device", "cpu", "--dh", "--dh-steps", "1", "--dh-images", "20")
    check_dh_report(report)
    assert report["paper_network"]["generation_images"] == 20 and report["paper_network"]["final_losses"]["step"] == 1


@pytest.mark.parametrize("dh", [False, True], ids=["check", "dh"])
def test_without_a_gpu_it_asks_for_device_cpu(monkeypatch, capsys, dh):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["check-gpu", *(["--dh"] if dh else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: check-gpu measures the CUDA path") and "--device cpu" in err


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--device", "cpu", "--jobs", "2,x"], "--jobs expects"),
    (["--device", "cpu", "--jobs", "0"], "--jobs counts must be ≥ 1"),
    (["--device", "cpu", "--fused", "4,y"], "--fused expects"),
    (["--device", "cpu", "--epochs", "0"], "--epochs must be ≥ 1"),
    (["--device", "cpu", "--model", "nonet"], "nonet"),
    (["--device", "cpu", "--dh", "--dh-steps", "0"], "--dh-steps and --dh-images must be ≥ 1"),
])
def test_bad_arguments_fail_before_any_measurement(capsys, args, message):
    assert main(["check-gpu", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_a_missing_parity_file_without_cifar_fails_first(tmp_path, capsys):
    missing = tmp_path / "parity.npz"
    args = ["check-gpu", "--device", "cpu", *TINY, "--data-root", str(tmp_path), "--parity-npz", str(missing)]
    assert main(args) == 2
    assert "holds no CIFAR-10" in capsys.readouterr().err and not missing.exists()


@cuda_only
def test_cuda_run_graphs_the_engine_default(tmp_path, data_root, parity_npz):
    report = run(tmp_path, *TINY[:2], "--train-size", "2048", "--test-size", "256", "--epochs", "1", "--jobs", "2",
                 "--fused", "1", "--data-root", data_root, "--parity-npz", parity_npz, "--parity-epochs", "1")
    check_gpu_report(report, cuda=True)
    assert [report[label]["cuda_graph"] for label, *_ in VARIANTS] == [graph for *_, graph in VARIANTS]
    assert report["concurrent"]["2"]["cuda_graph"] and positive(report["concurrent"]["2"]["images_per_second"])


@cuda_only
def test_cuda_run_of_dh(tmp_path):
    check_dh_report(run(tmp_path, "--dh", "--dh-steps", "2", "--dh-images", "1000"))
