"""Fused victims (benchmark/tools/fused.py) against the same victims trained one by one with `train_victim`.

Tolerance. The fused step computes the same recipe with the same random streams, but a vmapped convolution
is one grouped convolution over the stacked models, which sums in another order; a max-pool or ReLU that
then decides the other way turns a 1e-7 rounding difference into a visible step. So the fused models are
compared with the trainer's own float noise, measured in the same test: `train_victim` with
`channels_last=False` (the same computation in another memory layout, nothing else changed). Every state
entry of a fused model must lie within that job's largest layout difference (`torch.allclose`, atol = that
number, at least 1e-5); on the 2-core CPU they ended 3.7× to 130× inside that bound (max |Δ| 1.9e-5 to
2.1e-4 after 6 steps; docs/performance.md#fused-victims). After a single SGD step the fixed tolerance
rtol 1e-4 / atol 1e-5 holds (measured ≤ 1.2e-7). Not bit for bit."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmark.data import ImageSet, load_splits
from benchmark.plugins import Context
from benchmark.presets import PRESETS
from benchmark.registry import countermeasures
from benchmark.tools.fused import FusedJob, NotFusable, train_victims_fused
from benchmark.training import train_victim

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """One thread, as the separately trained references (intra-op threads would change the float order)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def smoke_test_set(data_root: str) -> ImageSet:
    return load_splits("cifar10", data_root, "smoke")[1]


def make_jobs(train: ImageSet, preset, plan: list[tuple[str, int]], tmp_path) -> list[FusedJob]:
    """One job per (countermeasure, seed): set up and pre-processed as run_cell does."""
    jobs = []
    for name, seed in plan:
        cm = countermeasures.get(name)()
        ctx = Context(CPU, seed=seed, preset=preset, num_classes=train.num_classes, cache_dir=tmp_path)
        cm.setup(ctx)
        jobs.append(FusedJob(cm.run_preprocess(train.images, train.labels, ctx), train.labels, cm, seed))
    return jobs


def separate(job: FusedJob, preset, test: ImageSet, **kw):
    return train_victim(job.train_images, job.train_labels, test.images, test.labels, test.num_classes, preset,
                        job.countermeasure, job.seed, CPU, **kw)


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in b)


# none (the plain step), grayscale (pre-processed images), cutout (draws from the job's stream in augment);
# with tinycnn also mixup, whose soft labels share a fused step with the others' class indices.
PLANS = {
    "tinycnn": [("none", 0), ("grayscale", 1), ("cutout", 2), ("mixup", 3)],
    "fastcnn": [("none", 0), ("grayscale", 1), ("cutout", 2)],
}


@pytest.mark.parametrize("victim", list(PLANS))
def test_fused_victims_match_separately_trained_ones(cifar_small, smoke_test_set, tmp_path, victim):
    # 200 images at batch 64: 3 steps per epoch, 2 epochs (a new batch order each), evaluated after each.
    preset = dataclasses.replace(PRESETS["smoke"], model=victim, epochs=2)
    jobs = make_jobs(cifar_small, preset, PLANS[victim], tmp_path)
    fused = train_victims_fused(jobs, preset, CPU, smoke_test_set.images, smoke_test_set.labels, 10)
    assert len(fused) == len(jobs)
    one_image = 1 / len(smoke_test_set)
    for job, got in zip(jobs, fused):
        want = separate(job, preset, smoke_test_set)
        layout = separate(job, preset, smoke_test_set, channels_last=False)
        got_state, want_state = got.model.state_dict(), want.model.state_dict()
        noise = max(max_abs_diff(layout.model.state_dict(), want_state), 1e-5)
        measured = max_abs_diff(got_state, want_state)
        print(f"\n{victim} {job.countermeasure.name}: fused vs separate max |Δ| {measured:.2e}, "
              f"train_victim's own layout noise {noise:.2e}; test accuracy {got.history} vs {want.history}")
        assert got_state.keys() == want_state.keys()
        for key, value in want_state.items():
            if key.endswith("num_batches_tracked"):
                assert torch.equal(got_state[key], value), key
            else:
                assert torch.allclose(got_state[key], value, rtol=0, atol=noise), (key, measured, noise)
        assert [e for e, _ in got.history] == [e for e, _ in want.history] == [1, 2]
        for (_, a), (_, b) in zip(got.history, want.history):
            assert abs(a - b) <= 2 * one_image + 1e-12, (got.history, want.history)
        assert abs(got.final_acc - want.final_acc) <= 2 * one_image + 1e-12
        assert abs(got.train_acc - want.train_acc) <= 2 / len(cifar_small) + 1e-12
        assert got.peak_acc == max(acc for _, acc in got.history)
        assert got.seconds > 0 and got.images_per_second > 0


@pytest.mark.parametrize("victim", list(PLANS))
def test_one_fused_step_within_fixed_tolerance(cifar_small, smoke_test_set, tmp_path, victim):
    """One SGD step (64 images, no warm-up left): before any max-pool or ReLU can flip, the fused models
    agree with train_victim's to rounding (measured ≤ 1.2e-7)."""
    preset = dataclasses.replace(PRESETS["smoke"], model=victim, epochs=1)
    one_batch = ImageSet(cifar_small.images[:64], cifar_small.labels[:64], cifar_small.classes)
    jobs = make_jobs(one_batch, preset, [("none", 0), ("cutout", 1)], tmp_path)
    fused = train_victims_fused(jobs, preset, CPU, smoke_test_set.images[:200], smoke_test_set.labels[:200], 10)
    for job, got in zip(jobs, fused):
        want = train_victim(job.train_images, job.train_labels, smoke_test_set.images[:200],
                            smoke_test_set.labels[:200], 10, preset, job.countermeasure, job.seed, CPU)
        for key, value in want.model.state_dict().items():
            assert torch.allclose(got.model.state_dict()[key], value, rtol=1e-4, atol=1e-5), key
        assert got.history == want.history


def test_fusing_does_not_mix_the_models(cifar_small, smoke_test_set, tmp_path):
    """A model's result does not depend on its companions beyond rounding: job 0 alone and job 0 next to
    another seed end at the same accuracies and within 1e-5 after one step."""
    preset = dataclasses.replace(PRESETS["smoke"], epochs=1)
    one_batch = ImageSet(cifar_small.images[:64], cifar_small.labels[:64], cifar_small.classes)
    test_x, test_y = smoke_test_set.images[:200], smoke_test_set.labels[:200]
    pair = make_jobs(one_batch, preset, [("none", 0), ("none", 5)], tmp_path)
    alone = train_victims_fused(pair[:1], preset, CPU, test_x, test_y, 10)[0]
    together = train_victims_fused(pair, preset, CPU, test_x, test_y, 10)
    for key, value in alone.model.state_dict().items():
        assert torch.allclose(together[0].model.state_dict()[key], value, rtol=1e-4, atol=1e-5), key
    other = together[1].model.state_dict()
    assert not torch.allclose(other["head.weight"], alone.model.state_dict()["head.weight"])  # its own init


def test_refuses_a_countermeasure_that_overrides_the_training_step(cifar_small, smoke_test_set, tmp_path):
    preset = PRESETS["smoke"]
    jobs = make_jobs(cifar_small, preset, [("none", 0), ("adv_train", 1)], tmp_path)
    with pytest.raises(NotFusable, match=r"'adv_train' \(job 1, seed 1\) overrides training_step"):
        train_victims_fused(jobs, preset, CPU, smoke_test_set.images, smoke_test_set.labels, 10)


def test_refuses_mixed_architectures_and_sizes(cifar_small, smoke_test_set, tmp_path):
    preset = PRESETS["smoke"]
    a, b = make_jobs(cifar_small, preset, [("none", 0), ("none", 1)], tmp_path)
    test_x, test_y = smoke_test_set.images, smoke_test_set.labels
    with pytest.raises(NotFusable, match="different victim architectures.*tinycnn: jobs 0.*fastcnn: jobs 1"):
        train_victims_fused([a, dataclasses.replace(b, victim="fastcnn")], preset, CPU, test_x, test_y, 10)
    shorter = dataclasses.replace(b, train_images=b.train_images[:100], train_labels=b.train_labels[:100])
    with pytest.raises(NotFusable, match=r"different training-set sizes \(200, 100 images\)"):
        train_victims_fused([a, shorter], preset, CPU, test_x, test_y, 10)
    with pytest.raises(NotFusable, match="no jobs"):
        train_victims_fused([], preset, CPU, test_x, test_y, 10)
