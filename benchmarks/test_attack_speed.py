"""The crafting attacks and evaluation against the victim trainer's own pace, at one torch thread (as every CPU
task runs), on the quick preset's 5,000 real training images and `fastcnn`:

- a PGD pass (forward + input gradient, eval mode) as `em`/`tap`/`rem` now run it (channels_last model,
  evaluation-sized chunks) and as they ran it before (NCHW, 500-image chunks), in images/s against the trainer's
  standard step (forward, backward, SGD; channels_last, batch 128). A PGD pass does about two thirds of a
  training step's arithmetic (no weight gradients), so near 1.5× the trainer is the floor's pace;
- evaluation at `eval_batch` against the previous 1000-image batches.

UEBENCH_DATA_ROOT=... python -m pytest benchmarks/test_attack_speed.py --benchmark-only -s
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from benchmark.data import load_splits
from benchmark.evaluation import eval_batch
from benchmark.models import create_model
from methods.attacks import WarmStartPGD, fast_layout, toward

ROUNDS = 3
CPU = torch.device("cpu")


def _best(fn) -> float:
    """The fastest of ROUNDS runs of fn, in seconds."""
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def test_pgd_pass_and_evaluation_against_the_trainer(benchmark, data_root, one_thread):
    train, test = load_splits("cifar10", data_root, "quick")
    x, y = train.images.float().div(255), train.labels
    n = len(x)
    torch.manual_seed(0)
    model = create_model("fastcnn", 10)

    def trainer_epoch() -> None:
        net = fast_layout(model).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        for i in range(0, n - 127, 128):
            loss = F.cross_entropy(net(x[i : i + 128].contiguous(memory_format=torch.channels_last)), y[i : i + 128])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def pgd_pass(layout: torch.memory_format, chunk: int) -> None:
        net = model.to(memory_format=layout)
        pgd = toward(lambda t: t, WarmStartPGD(net, 8 / 255, 1.6 / 255, 1))
        for i in range(0, n, chunk):
            pgd.start = torch.zeros_like(x[i : i + chunk])
            pgd(x[i : i + chunk], y[i : i + chunk])

    @torch.no_grad()
    def evaluation(batch: int) -> None:
        net = fast_layout(model).eval()
        for i in range(0, len(test.images), batch):
            net(test.images[i : i + batch].float().div_(255).contiguous(memory_format=torch.channels_last))

    trainer_s = _best(trainer_epoch)
    benchmark.pedantic(lambda: pgd_pass(torch.channels_last, eval_batch(CPU)), rounds=ROUNDS, iterations=1)
    now_s = benchmark.stats.stats.min
    before_s = _best(lambda: pgd_pass(torch.contiguous_format, 500))
    eval_now, eval_before = _best(lambda: evaluation(eval_batch(CPU))), _best(lambda: evaluation(1000))
    trained = (n // 128) * 128 / trainer_s
    benchmark.extra_info.update(trainer_images_per_s=trained, pgd_images_per_s=n / now_s, pgd_before_images_per_s=n / before_s,
                                eval_s=eval_now, eval_before_s=eval_before)
    print(f"\ntrainer {trained:.0f} images/s; PGD pass now {n / now_s:.0f} images/s ({n / now_s / trained:.2f}× "
          f"the trainer), before {n / before_s:.0f} ({n / before_s / trained:.2f}×): {before_s / now_s:.2f}× faster; "
          f"evaluation of {len(test.images)} images {eval_now:.2f} s vs {eval_before:.2f} s: {eval_before / eval_now:.2f}× faster")
    assert n / now_s >= trained  # the attack's pass does less work than a training step
    assert before_s / now_s >= 1.5 and eval_before / eval_now >= 1.5
