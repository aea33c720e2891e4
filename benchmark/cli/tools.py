"""The commands that read or measure one piece: `export`, `show`, `bands`, `trace`, `profile`, `check-gpu`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..imported import PREFIX
from ..registry import countermeasures, methods
from .arguments import parse_plugin_args


def export(args: argparse.Namespace) -> int:
    """`export`: a method's protected set as .npz, .pt or a PNG folder."""
    from ..data import load_splits, split_positions
    from ..engine.config import GridConfig
    from ..engine.recipe import protected_set
    from ..imported import export

    config = GridConfig(dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir,
                        device=args.device, method_args=parse_plugin_args(args.method_args, methods, "--method-args"))
    method = config.method(args.method)
    images, gen = protected_set(config, method, args.seed)
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    path = export(images, train.labels, split_positions(config.dataset, config.data_root, config.preset), args.out)
    stats = ", ".join(f"{k} {v:.4g}" for k, v in gen["perturbation"].items() if isinstance(v, (int, float)))
    print(f"{len(images)} images of {method.name} ({gen['budget']}; {stats}) written to {path}")
    return 0


def show(args: argparse.Namespace) -> int:
    """`show`: a method's gallery."""
    from ..data import load_splits
    from ..engine.config import GridConfig
    from ..engine.recipe import protected_set
    from ..identity import effective_settings, plugin_label
    from ..report.gallery import write_gallery

    if Path(args.out).suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png file, got {args.out!r}")
    if args.per_class < 1:
        raise ValueError(f"--per-class must be at least 1, got {args.per_class}")
    if not args.method.startswith(PREFIX):
        methods.get(args.method)  # an unknown name lists the valid ones before any data is read
    config = GridConfig(dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir,
                        device=args.device, method_args=parse_plugin_args(args.method_args, methods, "--method-args"))
    method = config.method(args.method)
    images, gen = protected_set(config, method, args.seed)
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    path = write_gallery(args.out, train.images, images, train.labels, train.classes, args.per_class, set_key=gen["key"])
    source = "from the cache" if gen["cached"] else f"generated in {gen['generate_s']:.0f} s and cached"
    print(f"gallery of {plugin_label(method)} ({gen['budget']}; set {source}) written to {path}")
    settings = effective_settings(method, config.preset_obj)
    if settings:
        print(f"settings at {args.preset}: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    return 0


def bands(args: argparse.Namespace) -> int:
    """`bands`: where each perturbation sits in frequency and what pre-processing keeps of it."""
    from tabulate import tabulate

    from ..data import load_splits
    from ..engine.config import GridConfig
    from ..engine.recipe import make_context, protected_set
    from ..identity import plugin_label
    from ..tools.spectrum import energy_share, haar_ll_share, probe_accuracy

    names, filters = methods.expand(args.methods), countermeasures.expand(args.countermeasures)
    if args.images < 1:
        raise ValueError(f"--images must be at least 1, got {args.images}")
    config = GridConfig(dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir,
                        device="cpu", method_args=parse_plugin_args(args.method_args, methods, "--method-args"))
    built = [config.countermeasure(name) for name in filters]
    for cm in built:
        if "preprocess" not in cm.stages():
            valid = [n for n in countermeasures.names() if "preprocess" in countermeasures.get(n).stages()]
            raise ValueError(f"{cm.name!r} does not pre-process the images; valid: {', '.join(valid)}")
    train, _ = load_splits(config.dataset, config.data_root, config.preset)
    clean, labels = train.images[: args.images], train.labels[: args.images]
    ctx = make_context(config, args.seed, train.num_classes, lambda it=None, **kw: it)
    for cm in built:  # a purifier's model comes from the cache (or is fitted) here
        cm.prepare(ctx)
        cm.setup(ctx)
    cleaned = [cm.preprocess(clean, labels, ctx).float() for cm in built]  # once, not once per method
    table, probes = [], []
    for name in names:
        method = config.method(name)
        protected = protected_set(config, method, args.seed)[0][: args.images]
        label = plugin_label(method)
        delta = protected.float() - clean.float()
        left = [cm.preprocess(protected, labels, ctx).float() - after for cm, after in zip(built, cleaned)]
        table.append([label, haar_ll_share(delta), *(energy_share(x, delta) for x in left)])
        if args.probe:
            probes.append([label, *(probe_accuracy(x, labels) for x in [delta, *left])])
    print(tabulate(table, headers=["method", "coarse-band share", *(f"kept: {n}" for n in filters)], floatfmt=".3f"))
    if args.probe:
        print(f"\nlinear probe of the class from the perturbation left (chance {1 / train.num_classes:.2f}):")
        print(tabulate(probes, headers=["method", "none", *filters], floatfmt=".3f"))
    return 0


def trace(args: argparse.Namespace) -> int:
    """`trace`: one cell's victim trained for a schedule of your choosing, traced."""
    import json

    from tabulate import tabulate

    from ..engine.cells import Cell
    from ..engine.config import GridConfig
    from ..engine.local import task_threads, torch_threads
    from ..tools.trace import trace_cell

    config = GridConfig(
        dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir, device=args.device,
        method_args=parse_plugin_args(args.method_args, methods, "--method-args"),
        countermeasure_args=parse_plugin_args(args.countermeasure_args, countermeasures, "--countermeasure-args"),
    )
    methods.get(args.method)
    countermeasures.get(args.countermeasure)
    with torch_threads(task_threads(config.torch_device, 1)):  # as the grid's cell ran
        result = trace_cell(config, Cell(args.method, args.countermeasure, args.seed).resolve(config), args.epochs,
                            args.eval_every, victim_seed=args.victim_seed)
    keys = ["epoch", "test_acc", "protected_acc", "planted_rate", "baseline_rate"]
    print(f"{result['cell_id']} for {args.epochs} epochs ({result['seconds']:.0f} s); planted: perturbation "
          f"{'pixels copied' if result['planting'] == 'copy' else 'added'} from class y+1")
    print(tabulate([[p[k] for k in keys] for p in result["points"]], headers=keys, floatfmt=".3f"))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def profile(args: argparse.Namespace) -> int:
    """`profile`: one piece of each stage kind timed at a preset."""
    import json

    from ..engine.config import GridConfig
    from ..engine.local import task_threads, torch_threads
    from ..tools.profile import profile_grid, render

    names, chosen = methods.expand(args.methods), countermeasures.expand(args.countermeasures)  # before any work
    if args.cache_dir is not None and not args.use_cache:
        raise ValueError("--cache-dir is only read with --use-cache; without it the profile makes and times "
                         "everything in a temporary folder")
    config = GridConfig(
        dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir, device=args.device,
        method_args=parse_plugin_args(args.method_args, methods, "--method-args"),
        countermeasure_args=parse_plugin_args(args.countermeasure_args, countermeasures, "--countermeasure-args"),
    )
    with torch_threads(task_threads(config.torch_device, 1)):  # as the grid's tasks run
        result = profile_grid(config, names, chosen, args.epochs, args.seed, args.use_cache,
                              lambda text: print(f"profile: {text}…", file=sys.stderr, flush=True))
    print(render(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result.as_dict(), indent=1) + "\n")
    return 0


def check_gpu(args: argparse.Namespace) -> int:
    """`check-gpu`: the CUDA path measured (or the DH pipeline's with --dh)."""
    import json

    from ..tools.gpu_check import check_dh, check_gpu, parse_jobs, resolve_device

    device = resolve_device(args.device)
    if args.dh:
        report = check_dh(device, args.dh_steps, args.dh_images)
    else:
        report = check_gpu(device, args.epochs, args.train_size, args.test_size, parse_jobs(args.jobs, "--jobs"),
                           args.data_root, args.parity_npz, args.parity_epochs, args.methods,
                           args.countermeasures, args.model, parse_jobs(args.fused, "--fused"))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


def detect(args: argparse.Namespace) -> int:
    """`detect`: each method's detectability (held-out accuracy and AUROC of two simple detectors)."""
    from ..engine.config import GridConfig
    from ..tools.detect import DETECTION_FILE, Recipe, detect

    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    config = GridConfig(dataset=args.dataset, preset=args.preset, data_root=args.data_root, cache_dir=args.cache_dir,
                        device=args.device, method_args=parse_plugin_args(args.method_args, methods, "--method-args"))
    rows = detect(config, methods.expand(args.methods), args.seeds, args.out, Recipe(epochs=args.epochs),
                  lambda text: print(text, flush=True))
    print(f"{len(rows)} detection rows added to {Path(args.out) / DETECTION_FILE}")
    return 0


def pack_data(args: argparse.Namespace) -> int:
    """`pack-data`: the dataset's folder as checked parts under the transfer limit."""
    from ..data import resolve_data_root
    from ..tools.transfer import pack

    manifest = pack(resolve_data_root(args.data_root), args.folder, args.out, args.part_mib)
    sizes = ", ".join(f"{p['name']} {p['bytes'] / 2**20:.1f} MiB" for p in manifest["parts"])
    print(f"{len(manifest['files'])} files in {len(manifest['parts'])} parts in {args.out}: {sizes}")
    return 0


def unpack_data(args: argparse.Namespace) -> int:
    """`unpack-data`: the parts checked, joined, extracted and verified."""
    from ..tools.transfer import unpack

    root = unpack(args.parts, args.out, None if args.dataset == "none" else args.dataset)
    print(f"data root ready and verified: {root}")
    return 0


def slice_command(args: argparse.Namespace) -> int:
    """`slice`: the prepared device run of one slice of the grid."""
    from ..tools.gpu_slice import ISS_METHODS, iss_slice

    names = tuple(methods.expand(args.methods)) if args.methods else ISS_METHODS
    result = iss_slice(args.out, args.reference, fast_preset=args.fast_preset, reference_preset=args.reference_preset,
                       methods=names, jobs=args.jobs, data_root=args.data_root,
                       cache_dir=args.cache_dir, device=args.device,
                       method_args=parse_plugin_args(args.method_args, methods, "--method-args"))
    for grid in ("fast", "reference"):
        r = result[grid]
        print(f"{grid} ({r['preset']}): {r['cells']} cells in {r['wall_s']:.0f} s on {result['device']}")
    print(f"rows, compare.md and slice.json in {args.out}")
    return 0
