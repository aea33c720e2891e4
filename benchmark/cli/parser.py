"""`build_parser`: every command's options, each with its help."""
from __future__ import annotations

import argparse

from ..presets import PRESETS
from .arguments import (
    CACHE_HELP,
    COUNTERMEASURE_ARGS_HELP,
    DATA_ROOT_HELP,
    DATASET_HELP,
    FRONTIER_COUNTERMEASURES,
    METHOD_ARGS_HELP,
    PRESET_HELP,
    preset_spec,
    ratios,
    seeds,
    targets,
)
from .listing import LIST_ALIASES, LIST_KINDS

DESCRIPTION = ("run a grid, list plugins and presets, render leaderboards, compare with references, export a protected "
               "set or draw its gallery, measure where a perturbation sits (`bands`), trace a longer victim (`trace`), "
               "profile a preset's time (`profile`), study strength against perceptibility (`frontier`), check the GPU path")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=DESCRIPTION)
    parser.add_argument("--strict-plugins", action="store_true",
                        help="stop when an entry-point plugin fails to load (default: report it and go on)")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run a method × countermeasure grid (resumable)")
    run.add_argument("--methods", default="all",
                     help="comma list of methods, 'all' (default) or file:PATH (an imported protected set)")
    run.add_argument("--countermeasures", "--defenses", dest="countermeasures", default="none",
                     help="comma list of countermeasures or 'all' (default: none)")
    run.add_argument("--preset", default="quick", type=preset_spec,
                     help="quick (default): the published CPU leaderboard's, whose finished rows a run takes; smoke: "
                          "seconds per cell, its numbers only test the plumbing; paper: the published protocol on a "
                          "GPU (see `list presets`); "
                          "NAME[field=value,...] changes fields, e.g. 'quick[train_per_class=1000]'")
    run.add_argument("--dataset", default="cifar10", help="cifar10, cifar100 or imagenet-subset")
    run.add_argument("--out", default=None, help="run folder (default: results/runs/DATASET-PRESET)")
    run.add_argument("--data-root", default=None, help="dataset folder (else $UEBENCH_DATA_ROOT, else the user cache)")
    run.add_argument("--download", action="store_true", help="download the dataset when it is not in the data root")
    run.add_argument("--cache-dir", default=None, help="artifact cache (else $UEBENCH_CACHE_DIR, else the user cache)")
    run.add_argument("--seeds", type=seeds, default=[0], help="comma list of seeds (default: 0)")
    run.add_argument("--poison-ratios", type=ratios, default=[1.0], metavar="R,R,...",
                     help="shares of the training set that are protected, e.g. 0.5,0.8,1.0 (default: 1.0)")
    run.add_argument("--models", default=None, metavar="M,M,...",
                     help="victims to train every cell on, e.g. fastcnn,vgg16bn (default: the preset's victim); "
                          "see `list models`")
    run.add_argument("--jobs", type=int, default=None,
                     help="sets and cells run in parallel processes on this machine (default: 1; local executor only); "
                          "on a CPU each computes on one torch thread, so give it the number of cores")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="local (default): this machine, --jobs processes; ray: a Ray task graph, on a new local Ray "
                          "or the cluster at --ray-address (pip install -e '.[ray]'; see docs/cluster.md)")
    run.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                     help="with --executor ray: the running cluster to use (default: $RAY_ADDRESS, else the one `ray "
                          "start` last started here, else a new local Ray); its nodes must share the cache folder")
    run.add_argument("--cpus-per-cell", type=int, default=None, metavar="N",
                     help="with --executor ray: CPUs each task holds (default: 1); its torch threads with a GPU, "
                          "else one thread, as locally")
    run.add_argument("--gpus-per-cell", type=float, default=None, metavar="F",
                     help="with --executor ray: the share of a GPU each task holds, e.g. 1 or 0.5 (default: 0, "
                          "cells on CPUs)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--no-clean", action="store_true", help="do not add the clean reference row")
    run.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)
    run.add_argument("--countermeasure-args", "--defense-args", dest="countermeasure_args", nargs="*", default=[],
                     metavar="NAME.PARAM=VALUE", help=COUNTERMEASURE_ARGS_HELP)
    run.add_argument("--budget", nargs="*", default=[], metavar="NAME=NORM:RADIUS",
                     help="threat model of an imported set, checked like a plugin's: linf:8 (1/255), l2:1.0, l0:1")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--reuse", nargs="+", default=None, metavar="PATH",
                     help="run folders or rows files (*.jsonl) whose finished cells with the same cell id (the hash of "
                          "everything that made the number) are copied into --out instead of being run again "
                          "(default: the published boards' rows, results/leaderboards/, in a checkout)")
    run.add_argument("--recompute", action="store_true",
                     help="compute every cell here, taking no finished row from the published boards or --reuse")

    ls = sub.add_parser("list", help="list registered plugins and presets")
    ls.add_argument("kind", nargs="?", choices=[*LIST_KINDS, *LIST_ALIASES], help="one kind (default: all)")
    ls.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE",
                    help="show the budget of methods built with these parameters")
    ls.add_argument("--names", default="*", metavar="PATTERN", help="only names matching this wildcard, e.g. 'dh*'")
    ls.add_argument("--preset", default="quick", choices=list(PRESETS),
                    help="parameters that take the preset's value show it at this preset, and `list models` measures "
                         "each victim's cost per cell of it (default: quick)")
    ls.add_argument("--device", default="auto", help="where `list models` measures: auto, cpu, cuda or cuda:N")

    lb = sub.add_parser("leaderboard", help="render leaderboard tables from run folders")
    lb.add_argument("run_dirs", nargs="+", metavar="RUN", help="run folders or results .jsonl files")
    lb.add_argument("--out", default=None, help="output folder (default: the first RUN, or its folder for a file)")
    lb.add_argument("--name", default="leaderboard", help="file stem: NAME.csv, NAME.md, NAME.png (default: leaderboard)")
    lb.add_argument("--with-rows", action="store_true", help="also write the rows rendered, one NAME.seedS.jsonl per seed")

    ex = sub.add_parser("export", help="write a method's protected set as .npz, .pt or a PNG folder")
    ex.add_argument("method", help="a registered method (or file:PATH)")
    ex.add_argument("--out", required=True, metavar="FILE.npz|FILE.pt|DIR",
                    help="an .npz or .pt file (uint8 images and labels), or a folder of PNGs, one sub-folder per class")
    ex.add_argument("--preset", default="quick", choices=list(PRESETS), help=PRESET_HELP)
    ex.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    ex.add_argument("--seed", type=int, default=0, help="the protected set's seed (default: 0)")
    ex.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    ex.add_argument("--cache-dir", default=None, help=CACHE_HELP)
    ex.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ex.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)

    show = sub.add_parser("show", help="draw a method's gallery: per class, images clean, protected and the "
                                       "perturbation amplified, as one PNG")
    show.add_argument("method", help="a registered method (or file:PATH)")
    show.add_argument("--out", required=True, metavar="FILE.png", help="the gallery picture to write")
    show.add_argument("--preset", default="quick", choices=list(PRESETS), help=PRESET_HELP)
    show.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    show.add_argument("--seed", type=int, default=0, help="the protected set's seed (default: 0)")
    show.add_argument("--per-class", type=int, default=2, metavar="N", help="images per class (default: 2)")
    show.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    show.add_argument("--cache-dir", default=None, help="where the set is looked up first (else generated and cached)")
    show.add_argument("--device", default="auto", help="where a set that is not cached is generated")
    show.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)

    bands = sub.add_parser("bands", help="where each method's perturbation sits in frequency (Haar coarse-band share) "
                                         "and how much of it pre-processing countermeasures keep")
    bands.add_argument("methods", help="comma list of registered methods")
    bands.add_argument("--preset", default="quick", choices=list(PRESETS), help=PRESET_HELP)
    bands.add_argument("--countermeasures", default="median_filter,mean_filter,gaussian_blur,resize,jpeg10",
                       help="pre-processing countermeasures to measure (default: the low-pass ones)")
    bands.add_argument("--images", type=int, default=1000, help="the first N training images (default: 1000)")
    bands.add_argument("--probe", action="store_true",
                       help="also a linear probe: how well the class is read from the perturbation left after each")
    bands.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    bands.add_argument("--seed", type=int, default=0, help="the protected set's seed (default: 0)")
    bands.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    bands.add_argument("--cache-dir", default=None, help="where the sets are looked up first (else generated and cached)")
    bands.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)

    trace = sub.add_parser("trace", help="train one cell's victim for a schedule of your choosing and trace, at every "
                                         "evaluation, test accuracy, protected-set accuracy and the planted rate")
    trace.add_argument("method", help="a registered method")
    trace.add_argument("--countermeasure", default="none", help="default: none")
    trace.add_argument("--preset", default="quick", choices=list(PRESETS), help=PRESET_HELP)
    trace.add_argument("--epochs", type=int, required=True, help="epochs (the preset's schedule stretched over them)")
    trace.add_argument("--eval-every", type=int, default=5, metavar="N", help="evaluate every N epochs (default: 5)")
    trace.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    trace.add_argument("--seed", type=int, default=0, help="the cell's seed: the protected set's and, by default, the "
                                                             "victim's (default: 0)")
    trace.add_argument("--victim-seed", type=int, default=None, help="seed the victim alone (initialisation, batch "
                                                                      "order, augmentation), keeping the set of --seed")
    trace.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    trace.add_argument("--cache-dir", default=None, help="where the set is looked up first (else generated and cached)")
    trace.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    trace.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)
    trace.add_argument("--countermeasure-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE",
                       help=COUNTERMEASURE_ARGS_HELP)
    trace.add_argument("--out", default=None, metavar="FILE.json", help="also write the trace as JSON here")

    prof = sub.add_parser("profile", help="time one piece of each stage kind at a preset (generation per method, the "
                                          "surrogate and DDPM fits, pre-processing, a training epoch per "
                                          "countermeasure, evaluation) and project a grid's time")
    prof.add_argument("--preset", default="quick", choices=list(PRESETS), help=PRESET_HELP)
    prof.add_argument("--methods", default="all", help="comma list of registered methods (default: all)")
    prof.add_argument("--countermeasures", default="all", help="comma list of countermeasures (default: all)")
    prof.add_argument("--epochs", type=int, default=1, metavar="N",
                      help="epochs each countermeasure's victim trains, its steps sweeping the preset's schedule; the "
                           "projection takes their mean (default: 1)")
    prof.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    prof.add_argument("--seed", type=int, default=0, help="the protected set's seed (default: 0)")
    prof.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    prof.add_argument("--use-cache", action="store_true",
                      help="read protected sets and fitted models from the cache (--cache-dir, else $UEBENCH_CACHE_DIR, "
                           "else the user cache), never writing it; cached sets report the generation time recorded "
                           "with them (default: everything made and timed in a temporary folder)")
    prof.add_argument("--cache-dir", default=None, help="with --use-cache: the cache to read")
    prof.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    prof.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)
    prof.add_argument("--countermeasure-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE",
                       help=COUNTERMEASURE_ARGS_HELP)
    prof.add_argument("--out", default=None, metavar="FILE.json", help="also write the measurements as JSON here")

    cmp = sub.add_parser("compare", help="agreement figures with reference numbers, our cells beside theirs, and the "
                                         "protocol's facts checked")
    cmp.add_argument("run_dirs", nargs="+", metavar="RUN", help="run folders or results .jsonl files")
    cmp.add_argument("--reference", required=True, metavar="PATH.csv",
                     help="CSV of method,countermeasure,acc,source[,params] (e.g. references/cifar10-resnet18.csv)")
    cmp.add_argument("--out", default=None, metavar="FILE.md", help="also write the Markdown here")
    cmp.add_argument("--metric", default="final_acc", choices=["final_acc", "peak_acc"],
                     help="our accuracy after the last epoch (default) or at the best evaluation (early stopping)")
    cmp.add_argument("--resamples", type=int, default=1000, metavar="N",
                     help="bootstrap resamples of the seeds for the figures' intervals (default: 1000)")
    cmp.add_argument("--json", default=None, metavar="FILE.json",
                     help="also write the agreement figures and per-cell verdicts as JSON here")

    lev = sub.add_parser("levers", help="a calibration study: several boards (one per lever setting) with their "
                                        "agreement figures and cost per cell, as a table and a plot")
    lev.add_argument("run_dirs", nargs="+", metavar="RUN",
                     help="a run folder or rows file, or LABEL=PATH,PATH,... for one board's rows from several; one "
                          "board each; the first is the baseline the costs are relative to")
    lev.add_argument("--reference", required=True, metavar="PATH.csv", help="reference CSV, as for compare")
    lev.add_argument("--out", default=None, metavar="DIR", help="also write NAME.md, NAME.csv and NAME.png here")
    lev.add_argument("--name", default="levers", help="file stem (default: levers)")
    lev.add_argument("--resamples", type=int, default=200, metavar="N",
                     help="bootstrap resamples of the seeds per board (default: 200)")
    lev.add_argument("--base-hours", type=float, default=None, metavar="H",
                     help="CPU-hours of one seed of the full grid at the first run's settings: each run's is projected "
                          "from it by its cost, and the plot uses it")

    fr = sub.add_parser("frontier", help="methods at a ladder of strengths aimed at target PSNRs × countermeasures × "
                                         "seeds (resumable cells), then accuracy against PSNR as a table and a plot")
    fr.add_argument("--methods", default="all", help="comma list of methods with a strength knob, or 'all' (default; "
                                                     "see `list methods`)")
    fr.add_argument("--countermeasures", default=None,
                    help=f"comma list or 'all' (default: {','.join(FRONTIER_COUNTERMEASURES)}); with --render-only, the "
                         "columns `worst` and `mean` are taken over (default: every one in OUT)")
    fr.add_argument("--targets", type=targets, default=None, metavar="DB,DB,...",
                    help="target PSNRs of the ladder (default: 36,32,28,24,20); each method's strength as given is run too")
    fr.add_argument("--pilot-images", type=int, default=256, metavar="N",
                    help="training images each method's calibration pilot protects (default: 256)")
    fr.add_argument("--calibration-rounds", type=int, default=3, metavar="N",
                    help="pilot measurements per ladder step, re-predicted from each miss (default: 3; 0: predict "
                         "only). A ladder saved in OUT is reused as it is")
    fr.add_argument("--seeds", type=seeds, default=[0, 1], help="comma list of seeds (default: 0,1)")
    fr.add_argument("--preset", default="quick", type=preset_spec, help="as for run (default: quick)")
    fr.add_argument("--dataset", default="cifar10", help="cifar10, cifar100 or imagenet-subset")
    fr.add_argument("--out", default=None, help="run folder (default: results/runs/frontier-DATASET-PRESET)")
    fr.add_argument("--data-root", default=None, help="dataset folder (else $UEBENCH_DATA_ROOT, else the user cache)")
    fr.add_argument("--cache-dir", default=None, help="artifact cache (else $UEBENCH_CACHE_DIR, else the user cache)")
    fr.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    fr.add_argument("--jobs", type=int, default=1, help="parallel processes, as for run (default: 1)")
    fr.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE",
                    help="other parameters of the methods (the knob itself is the ladder's)")
    fr.add_argument("--countermeasure-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE",
                    help="parameters of the countermeasures")
    fr.add_argument("--no-progress", action="store_true", help="hide progress bars")
    fr.add_argument("--recompute", action="store_true",
                    help="compute every cell here, taking no finished row from the published boards")
    fr.add_argument("--render-only", action="store_true",
                    help="only render OUT/frontier.{md,csv,png} from the rows already in OUT")

    site = sub.add_parser("site", help="render a static web site (HTML, CSS, a little JavaScript) from result rows")
    site.add_argument("run_dirs", nargs="+", metavar="PATH", help="run folders or results .jsonl files")
    site.add_argument("--out", required=True, metavar="DIR", help="output folder; open DIR/index.html")
    site.add_argument("--reference", default=None, metavar="PATH.csv", help="also a page comparing with this reference")

    st = sub.add_parser("stale", help="list the finished rows whose cell this checkout would compute under another id "
                                      "(a plugin, the trainer or a preset changed since), with what changed")
    st.add_argument("run_dirs", nargs="*", help="run folders or rows files (default: the published boards' rows)")
    st.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)

    det = sub.add_parser("detect", help="how easily each method's protected set is told from clean images: a linear "
                                        "and a 2-layer detector on raw pixels (as UDP), held-out accuracy and AUROC")
    det.add_argument("methods", help="comma list of methods (or all)")
    det.add_argument("--out", required=True, metavar="DIR", help="folder of detection.jsonl (resumable)")
    det.add_argument("--preset", default="quick", choices=list(PRESETS), help=PRESET_HELP)
    det.add_argument("--seeds", type=seeds, default=[0], help="comma list of seeds (default: 0)")
    det.add_argument("--epochs", type=int, default=30, help="detector training epochs (default: 30)")
    det.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    det.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    det.add_argument("--cache-dir", default=None, help=CACHE_HELP)
    det.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    det.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)

    pk = sub.add_parser("pack-data", help="cut a dataset's folder into checked parts under a transfer limit "
                                          "(the GPU machine takes 64 MiB a call)")
    pk.add_argument("--out", required=True, metavar="DIR", help="folder for the parts and manifest.json")
    pk.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    pk.add_argument("--folder", default="cifar-10-batches-py", help="the dataset's folder in the data root")
    pk.add_argument("--part-mib", type=float, default=60, help="largest part in MiB (default: 60)")
    up = sub.add_parser("unpack-data", help="check, join and extract pack-data's parts; verify every file")
    up.add_argument("parts", metavar="DIR", help="the folder with manifest.json and the parts")
    up.add_argument("--out", required=True, metavar="ROOT", help="the data root to extract into")
    up.add_argument("--dataset", default="cifar10", help="load it after (its published MD5s); 'none' to skip")

    sl = sub.add_parser("slice", help="one prepared device run: the ISS table's methods at full CIFAR-10 under none, "
                                      "grayscale and jpeg10 with paper-fast, a few ResNet-18 cells, the comparison")
    sl.add_argument("name", choices=["iss"], help="the slice (iss: the ISS table)")
    sl.add_argument("--out", required=True, metavar="DIR", help="folder of the two run folders, compare.md, slice.json")
    sl.add_argument("--reference", default="references/cifar10-resnet18.csv", metavar="PATH.csv", help="to compare with")
    sl.add_argument("--fast-preset", default="paper-fast", type=preset_spec, help="the fast grid's (default: paper-fast)")
    sl.add_argument("--reference-preset", default="paper", type=preset_spec, help="the ResNet-18 cells' (default: paper)")
    sl.add_argument("--methods", default=None, help="the fast grid's methods (default: em,rem,tap,lsp,ar,ops; clean added)")
    sl.add_argument("--jobs", type=int, default=1, help="cells at a time (default: 1)")
    sl.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    sl.add_argument("--cache-dir", default=None, help=CACHE_HELP)
    sl.add_argument("--device", default="auto", help="auto, cpu (a dry run), cuda or cuda:N")
    sl.add_argument("--method-args", nargs="*", default=[], metavar="NAME.PARAM=VALUE", help=METHOD_ARGS_HELP)

    gpu = sub.add_parser("check-gpu", help="measure the CUDA path: paper-preset throughput, memory, adversarial "
                                           "training's cost, the projected grid time (--dh: Semantic Deep Hiding)")
    gpu.add_argument("--epochs", type=int, default=3, metavar="N",
                     help="epochs of each timed paper-preset training (default: 3)")
    gpu.add_argument("--train-size", type=int, default=50_000, metavar="N",
                     help="training images (default: 50000); real CIFAR-10 when the data root holds it, else random "
                          "uint8 images of its shape (throughput does not depend on the pixels)")
    gpu.add_argument("--test-size", type=int, default=10_000, metavar="N", help="test images (default: 10000)")
    gpu.add_argument("--jobs", default="2,4", metavar="N,N,...",
                     help="numbers of cells to time at once on the GPU, as `run --jobs N` does ('' for none; "
                          "default: 2,4)")
    gpu.add_argument("--fused", default="1,4,8", metavar="K,K,...",
                     help="numbers of victims to time fused in one process (benchmark/tools/fused.py), on CUDA with and without "
                          "CUDA graphs ('' for none; default: 1,4,8)")
    gpu.add_argument("--parity-npz", default=None, metavar="FILE.npz",
                     help="also train on these real CIFAR-10 images with and without CUDA graphs and compare "
                          "accuracies; written from the data root when missing")
    gpu.add_argument("--parity-epochs", type=int, default=15, metavar="N",
                     help="epochs of the parity trainings (default: 15)")
    gpu.add_argument("--methods", type=int, default=0, metavar="N",
                     help="grid rows for the projection (default: the registered methods)")
    gpu.add_argument("--countermeasures", type=int, default=0, metavar="N",
                     help="grid columns for the projection, none included (default: the registered ones)")
    gpu.add_argument("--model", default=None, metavar="NAME",
                     help="victim to time (default: the paper preset's, resnet18); e.g. tinycnn for a fast dry run")
    gpu.add_argument("--dh", action="store_true",
                     help="check Semantic Deep Hiding instead: dh and dh-8 end to end on synthetic images, then the "
                          "paper-size hiding network's step and generation times (its own report)")
    gpu.add_argument("--dh-steps", type=int, default=200, metavar="N",
                     help="with --dh: hiding-network training steps, end to end and timed at paper size (default: 200)")
    gpu.add_argument("--dh-images", type=int, default=50_000, metavar="N",
                     help="with --dh: synthetic images the paper-size network hides, timed (default: 50000)")
    gpu.add_argument("--device", default="cuda",
                     help="cuda (default) or cuda:N; cpu for a dry run whose numbers say nothing about a GPU")
    gpu.add_argument("--data-root", default=None, metavar="PATH",
                     help="dataset folder (else $UEBENCH_DATA_ROOT, else the user cache)")
    gpu.add_argument("--out", default=None, metavar="FILE.json", help="also write the measurements as JSON here")
    return parser
