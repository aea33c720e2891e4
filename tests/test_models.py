"""Victim models: the contract every registered network keeps, the victim as a grid axis, the transfer table
and the measured cost that `list models` prints."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from benchmark.cli import main
from benchmark.engine.cells import Cell
from benchmark.engine.config import GridConfig
from benchmark.folding import folded
from benchmark.models import create_model
from benchmark.presets import PRESETS
from benchmark.registry import models
from benchmark.training import train_victim
from countermeasures.augment import NoDefense

PUBLISHED_PARAMETERS = {  # millions, as the architectures' CIFAR-10 versions are usually reported
    "vgg16bn": 14.7, "resnet18": 11.2, "resnet18-narrow": 0.70, "resnet50": 23.5, "mobilenetv2": 2.2, "densenet121": 7.0,
}


@pytest.mark.parametrize("name", models.names())
def test_every_model_keeps_the_contract_and_learns(name, cifar_small):
    """Logits for 32×32 inputs in [0, 1]; `.features` is the N×C×h×w map that `.head` reads after pooling;
    a few SGD steps on real images lower the loss; its folded eval copy computes the same logits; the same seed
    builds the same weights."""
    torch.manual_seed(0)
    model = create_model(name, 10)
    x, y = cifar_small.images[:4].float() / 255, cifar_small.labels[:4]  # DenseNet-121 takes 1 s an image here
    features = model.features(x)
    assert features.dim() == 4 and features.shape[:2] == (4, model.head.in_features)
    assert model(x).shape == (4, 10)
    if name in PUBLISHED_PARAMETERS:
        assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(PUBLISHED_PARAMETERS[name], abs=0.05)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], f"{name} did not fit 4 images: {losses}"
    with torch.no_grad():  # evaluation and the attacks run on this copy
        assert torch.allclose(folded(model)(x), model.eval()(x), rtol=1e-4, atol=1e-4)
    torch.manual_seed(0)
    again = create_model(name, 10)
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), create_model(name, 10).state_dict().values()))


def test_train_victim_trains_the_named_victim(cifar_small):
    preset = dataclasses.replace(PRESETS["smoke"], epochs=1)
    result = train_victim(cifar_small.images, cifar_small.labels, cifar_small.images, cifar_small.labels, 10, preset,
                          NoDefense(), 0, torch.device("cpu"), victim="mobilenetv2")
    assert any(type(m).__name__ == "InvertedResidual" for m in result.model.modules())


def test_the_default_victim_keeps_its_cell_id(data_root):
    config = GridConfig(preset="smoke", data_root=data_root, device="cpu")
    default = Cell("ops", "none", 0).resolve(config).cell_id
    assert Cell("ops", "none", 0, model="tinycnn").resolve(config).cell_id == default
    other = Cell("ops", "none", 0, model="fastcnn").resolve(config).cell_id
    assert other != default and "/fastcnn/ops/none/" in other


def test_a_two_victim_grid_generates_once_and_writes_a_transfer_table(tmp_path, data_root):
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["run", "--preset", "smoke", "--methods", "ops", "--defenses", "none,grayscale", "--models",
            "tinycnn,fastcnn", "--out", str(out), "--cache-dir", str(cache), "--data-root", data_root,
            "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    assert {r["model"] for r in rows} == {"tinycnn", "fastcnn"}
    assert len(list((cache / "protected").glob("*.pt"))) == 2, "clean and ops, once each for both victims"
    assert all(r["identity"]["model"]["name"] == r["model"] for r in rows)
    for model in ("tinycnn", "fastcnn"):
        assert (out / f"leaderboard-cifar10-smoke-{model}.csv").exists()
    table = (out / "leaderboard_transfer.csv").read_text().splitlines()
    assert table[0] == "method,tinycnn,fastcnn" and [line.split(",")[0] for line in table[1:]] == ["clean", "ops"]
    ops_fast = next(r for r in rows if (r["method"], r["model"], r["countermeasure"]) == ("ops", "fastcnn", "none"))
    assert float(table[2].split(",")[2]) == pytest.approx(100 * ops_fast["final_acc"], abs=0.01)
    assert main(args) == 0  # resume: nothing left to run
    assert len((out / "results.jsonl").read_text().splitlines()) == 8


def test_an_unknown_model_fails_before_any_work(tmp_path, data_root, capsys):
    assert main(["run", "--preset", "smoke", "--methods", "ops", "--models", "tinycnn,vgg19", "--out",
                 str(tmp_path / "run"), "--data-root", data_root, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'vgg19'" in err and "vgg16bn" in err
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_list_models_prints_each_victims_cost(capsys):
    assert main(["list", "models", "--names", "*cnn", "--preset", "smoke", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" not in out
    for name in ("tinycnn", "fastcnn"):
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        step, cell = line.split()[1:3]
        assert float(step) > 0 and float(cell) > 0, line


def test_airbench_whitens_the_patches_of_its_first_batch_and_averages_flips_in_eval(cifar_small):
    torch.manual_seed(0)
    model = create_model("airbench", 10)
    x = cifar_small.images[:256].float() / 255
    whitening = model.features[0]
    assert not bool(whitening.fitted)
    model(x[:128])  # training mode: the first batch fits the filters, which then stay
    fitted = whitening.conv.weight.clone()
    model(x[128:])
    assert bool(whitening.fitted) and torch.equal(whitening.conv.weight, fitted)
    with torch.no_grad():
        out = whitening.conv(x[:128]) - whitening.conv.bias[:, None, None]
        cov = torch.cov(out[:, :12].permute(1, 0, 2, 3).reshape(12, -1))
    # variance λ / (λ + ε) along each eigenvector: 1 along the strong ones, damped along the weakest (ε 5e-4)
    assert torch.allclose(cov.diagonal()[:4], torch.ones(4), atol=0.05) and cov.diagonal().max() < 1.01
    assert (cov - torch.diag(cov.diagonal())).abs().max() < 0.05, "decorrelated"
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x[:8]), model(x[:8].flip(-1)), atol=1e-5)
