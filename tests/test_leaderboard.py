"""Leaderboards rendered from result rows: configurations, seed statistics, gaps, provenance, file names."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from benchmark.report.leaderboard import DETECT_COLUMN, build_leaderboards
from benchmark.report.tables import write_leaderboard
from benchmark.store.rows import DETECTION_FILE

PUBLISHED = Path(__file__).resolve().parents[1] / "results" / "leaderboards"
PUBLISHED_ROWS = [PUBLISHED / f"cifar10-quick.seed{seed}.jsonl" for seed in range(3)]  # the quick table, a file a seed


def _id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _row(method: str, countermeasure: str, seed: int, acc: float | None, status: str = "ok",
         method_label: str | None = None, **fields) -> dict:
    """A schema-2 row; `method_label` names a non-default configuration of `method`, `fields` override."""
    label = method_label or method
    return {"schema": 2, "cell_id": f"{label}/{countermeasure}/{seed}", "config_id": _id(f"{label}/{countermeasure}"),
            "status": status, "error": None if status == "ok" else "RuntimeError: boom", "dataset": "cifar10",
            "preset": "smoke", "preset_id": _id("smoke"), "model": "tinycnn", "seed": seed,
            "method": method, "method_id": _id(label), "method_label": label,
            "countermeasure": countermeasure, "countermeasure_id": _id(countermeasure), "countermeasure_label": countermeasure,
            "git_commit": "a" * 40, "git_dirty": False, "versions": {"python": "3.11.7", "torch": "2.4.0"},
            "final_acc": acc} | fields


def _write(run: Path, rows: list) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_seed_mean_std_worst_and_mean_in_registry_order():
    rows = [_row("ops", "grayscale", 0, 0.2), _row("ops", "grayscale", 1, 0.4), _row("ops", "none", 0, 0.1),
            _row("ops", "none", 1, 0.1), _row("clean", "none", 0, 0.6), _row("clean", "grayscale", 0, 0.5),
            _row("clean", "jpeg10", 0, 0.5), _row("ops", "jpeg10", 0, 0.2), _row("ops", "jpeg10", 1, 0.3),
            _row("ops", "jpeg10", 1, 0.4)]  # a rerun of seed 1 replaces 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one commit, one set of versions: nothing to warn about
        (board,) = build_leaderboards(rows)
    assert list(board.mean.index) == ["clean", "ops"]
    assert list(board.mean.columns) == ["none", "grayscale", "jpeg10"]  # the summaries are a table of their own
    assert list(board.summary.columns) == ["worst", "mean"] and list(board.table.columns)[-2:] == ["worst", "mean"]
    assert board.mean.loc["ops", "grayscale"] == pytest.approx(30.0)
    assert board.std.loc["ops", "grayscale"] == pytest.approx(10.0)
    assert board.mean.loc["ops", "jpeg10"] == pytest.approx(30.0)
    assert board.summary.loc["ops", "worst"] == pytest.approx(30.0)
    assert board.summary.loc["ops", "mean"] == pytest.approx(70 / 3)
    assert board.seeds.loc["ops", "none"] == 2 and board.seeds.loc["clean", "none"] == 1
    assert not board.incomplete.any() and board.provenance == []
    assert board.title.endswith("· 1–2 seeds")


def test_defences_beyond_the_protocol_are_shown_after_the_summaries_and_left_out_of_them(tmp_path):
    from benchmark.report.site import write_site

    rows = [_row("ops", "none", 0, 0.2), _row("ops", "grayscale", 0, 0.3), _row("ops", "coin", 0, 0.6),
            _row("clean", "none", 0, 0.6), _row("clean", "grayscale", 0, 0.5)]  # clean has no `coin` cell
    (board,) = build_leaderboards(rows)
    assert board.extra == ("coin",)
    assert list(board.table.columns) == ["none", "grayscale", "worst", "mean", "coin"]
    assert board.summary.loc["ops", "worst"] == pytest.approx(30.0), "coin's 60 would be the worst case"
    assert board.summary.loc["ops", "mean"] == pytest.approx(25.0)
    assert not board.incomplete.any(), "a missing `extra` cell leaves the protocol's worst whole"
    run = _write(tmp_path / "run", rows)
    write_leaderboard([run], tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "The columns after `mean` (`coin`) are defences beyond the protocol" in md and "Incomplete" not in md
    write_site([run], tmp_path / "site")
    page = (tmp_path / "site" / "board.html").read_text()
    assert 'class="extra" title="beyond the protocol: outside worst and mean">coin</th>' in page
    assert '<th data-type="number" scope="col">grayscale</th>' in page


def test_markdown_shows_the_spread_only_when_there_is_more_than_one_seed(tmp_path):
    for seeds, expected in (([0], False), ([0, 1], True)):
        run = _write(tmp_path / f"run{len(seeds)}", [_row("ops", "none", s, 0.1 + 0.1 * s) for s in seeds])
        write_leaderboard([run], run)
        md = (run / "leaderboard.md").read_text()
        assert ("Range over seeds" in md and "Ranking by worst" in md) is expected
        assert (run / "leaderboard_std.csv").exists() is expected
        assert f"· {len(seeds)} seed" in md and "Mixed provenance" not in md and "*" not in md
        assert "these numbers test the plumbing only" in md  # the rows are smoke rows


def test_only_smoke_boards_say_plumbing_only(tmp_path):
    run = _write(tmp_path / "run", [_row("ops", "none", 0, 0.2, preset="quick", preset_id=_id("quick"))])
    write_leaderboard([run], run)
    assert "plumbing" not in (run / "leaderboard.md").read_text()


def test_a_default_and_a_non_default_configuration_are_two_rows_of_one_seed(tmp_path):
    rows = [_row("dh", "none", 0, 0.3), _row("dh", "none", 0, 0.5, method_label="dh[lfc_weight=0]"),
            _row("clean", "none", 0, 0.6)]
    (board,) = build_leaderboards(rows)
    assert list(board.mean.index) == ["clean", "dh", "dh[lfc_weight=0]"]
    assert board.mean.loc["dh", "none"] == pytest.approx(30.0)
    assert board.mean.loc["dh[lfc_weight=0]", "none"] == pytest.approx(50.0)
    assert (board.seeds["none"] == 1).all() and board.title.endswith("· 1 seed")
    write_leaderboard([_write(tmp_path / "run", rows)], tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "| dh[lfc_weight=0] " in md and "| dh " in md


def test_two_configurations_sharing_a_label_get_a_short_id():
    legacy = [{"cell_id": f"dh/none/{w}", "status": "ok", "dataset": "cifar10", "preset": "quick", "model": "fastcnn",
               "method": "dh", "countermeasure": "none", "seed": 0, "final_acc": acc,
               "method_params": {"lfc_weight": w}, "countermeasure_params": {}} for w, acc in ((0.1, 0.3), (0.0, 0.5))]
    (board,) = build_leaderboards(legacy)
    assert len(board.mean.index) == 2 and all(label.startswith("dh@") and len(label) == 9 for label in board.mean.index)
    assert sorted(board.mean["none"]) == pytest.approx([30.0, 50.0])


def test_a_failed_cell_is_shown_as_failed_and_its_worst_is_only_a_lower_bound(tmp_path):
    rows = [_row("clean", "none", 0, 0.9), _row("clean", "adv_train", 0, 0.8), _row("clean", "jpeg10", 0, 0.7),
            _row("em", "none", 0, 0.1), _row("em", "adv_train", 0, 0.85, status="failed"),
            _row("em", "jpeg10", 0, None), _row("em", "grayscale", 0, 0.2)]  # a non-finite accuracy counts as failed
    (board,) = build_leaderboards(rows)
    assert board.status.loc["em", "adv_train"] == "failed" and board.status.loc["em", "jpeg10"] == "failed"
    assert board.status.loc["clean", "grayscale"] == "missing"
    assert board.incomplete.to_dict() == {"clean": True, "em": True}
    assert board.summary.loc["em", "worst"] == pytest.approx(20.0)  # over the cells present ...
    assert pd.isna(board.mean.loc["em", "adv_train"])
    write_leaderboard([_write(tmp_path / "run", rows)], tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    em = next(line for line in md.splitlines() if line.startswith("| em "))
    assert em.count("failed") == 2 and "20.0*" in em and "15.0*" in em  # ... and marked as such
    assert "only a lower bound" in md
    status = pd.read_csv(tmp_path / "out" / "leaderboard_status.csv", index_col="method")
    assert status.loc["em", "adv_train"] == "failed" and bool(status.loc["em", "incomplete"])


def test_a_missing_cell_marks_the_row_incomplete(tmp_path):
    rows = [_row("clean", "none", 0, 0.9), _row("clean", "grayscale", 0, 0.8), _row("em", "none", 0, 0.1)]
    (board,) = build_leaderboards(rows)
    assert board.status.loc["em", "grayscale"] == "missing"
    assert board.incomplete.to_dict() == {"clean": False, "em": True}
    write_leaderboard([_write(tmp_path / "run", rows)], tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    em = next(line for line in md.splitlines() if line.startswith("| em "))
    assert "–" in em and "10.0*" in em
    clean = next(line for line in md.splitlines() if line.startswith("| clean "))
    assert "*" not in clean and "only a lower bound" in md


def test_rows_from_two_commits_warn_and_the_markdown_names_them(tmp_path):
    rows = [_row("ops", "none", 0, 0.2), _row("ops", "none", 1, 0.3), _row("clean", "none", 0, 0.6, git_commit="b" * 40)]
    with pytest.warns(UserWarning, match="2 git commits"):
        write_leaderboard([_write(tmp_path / "run", rows)], tmp_path / "out")
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "Mixed provenance" in md and "aaaaaaa (2 rows)" in md and "bbbbbbb (1 row)" in md


def test_a_dirty_checkout_or_other_library_versions_warn():
    rows = [_row("ops", "none", 0, 0.2), _row("clean", "none", 0, 0.6, git_dirty=True,
                                              versions={"python": "3.11.7", "torch": "2.5.0"}),
            _row("em", "none", 0, 0.1, versions={"python": "3.11.7", "torch": "2.4.0", "plugins": {"method": {"em": "2"}}}),
            _row("em", "none", 1, 0.1, versions={"python": "3.11.7", "torch": "2.4.0", "plugins": {"method": {"em": "3"}}})]
    with pytest.warns(UserWarning) as caught:
        (board,) = build_leaderboards(rows)
    text = " ".join(str(w.message) for w in caught)
    assert "uncommitted changes" in text and "torch (2.4.0, 2.5.0)" in text and "python" not in text
    # a plugin is compared between the rows it made: em's two versions differ; rows without em are not "absent"
    assert "plugins.method.em (2, 3);" in text
    assert len(board.provenance) == 2


def test_rows_from_two_machines_warn_and_rows_without_a_machine_do_not():
    avx2 = {"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD/23/49/0", "isa": "AVX2", "onednn": "v3.12.0", "cores": 2}
    avx512 = avx2 | {"cpu_id": "AuthenticAMD/26/2/1", "isa": "AVX512", "cores": 16}
    rows = [_row("ops", "none", 0, 0.2, machine=avx2), _row("ops", "none", 1, 0.3, machine=avx2),
            _row("clean", "none", 0, 0.6, machine=avx512)]
    with pytest.warns(UserWarning, match="2 machines") as caught:
        build_leaderboards(rows)
    text = " ".join(str(w.message) for w in caught)
    assert "isa=AVX2 onednn=v3.12.0 (2 rows)" in text and "isa=AVX512" in text and "cores" not in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_leaderboards([_row("ops", "none", 0, 0.2), _row("clean", "none", 0, 0.6, machine=avx2)])


def test_row_fields_cannot_write_outside_the_out_folder(tmp_path):
    rows = [_row("ops", "none", 0, 0.2), _row("ops", "none", 0, 0.3, dataset="../../evil", preset="../../evil",
                                               model="..", cell_id="evil")]
    out = tmp_path / "a" / "b" / "out"
    written = write_leaderboard([_write(tmp_path / "run", rows)], out, with_rows=True)
    assert len(written) == 2 * 6  # per board: csv, status, cells, md, png and the seed-0 rows
    assert all(p.resolve().parent == out.resolve() for p in written)
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()} == {"a", "run"}
    assert {p.relative_to(out).as_posix() for p in out.rglob("*")} == {p.name for p in written}
    assert any(p.name.startswith("leaderboard-_._evil-_._evil-_.") for p in written)
    with pytest.raises(ValueError, match="outside"):
        write_leaderboard([tmp_path / "run"], out, name="../escape")


def test_rows_lacking_fields_are_skipped_with_a_warning():
    rows = [_row("ops", "none", 0, 0.2), {"cell_id": "x", "status": "ok"}, ["not", "a", "row"],
            _row("ops", "grayscale", 0, 0.5, method_id=None), _row("ops", "jpeg10", 0, 0.5, schema=9),
            _row("ops", "cutout", 0, 0.5, status="running"), _row("ops", "resize", "0", 0.5)]
    with pytest.warns(UserWarning, match="skipped 6 row"):
        (board,) = build_leaderboards(rows)
    assert list(board.mean.columns) == ["none"]


def test_presets_sharing_a_name_get_separate_boards_with_a_short_id(tmp_path):
    rows = [_row("ops", "none", 0, 0.2), _row("ops", "none", 0, 0.4, preset_id=_id("smoke v2"), cell_id="v2")]
    boards = build_leaderboards(rows)
    assert sorted(b.preset_label for b in boards) == sorted(f"smoke@{_id(p)[:6]}" for p in ("smoke", "smoke v2"))
    written = write_leaderboard([_write(tmp_path / "run", rows)], tmp_path / "out")
    assert len({p.name for p in written}) == len(written) == 2 * 5  # one seed: no _std.csv


def test_published_rows_render_back_to_the_same_table(tmp_path):
    rows = [_row("ops", "none", 0, 0.1), _row("ops", "none", 1, 0.3), _row("clean", "none", 0, 0.6),
            _row("ops", "grayscale", 0, 0.9, status="failed"), _row("ops", "none", 0, 0.2)]  # a rerun replaces 0.1
    out = tmp_path / "published"
    written = write_leaderboard([_write(tmp_path / "run", rows)], out, name="cifar10-smoke", with_rows=True)
    assert {p.name for p in written} == {"cifar10-smoke.csv", "cifar10-smoke_std.csv", "cifar10-smoke_status.csv",
                                         "cifar10-smoke_cells.csv",
                                         "cifar10-smoke.md", "cifar10-smoke.png", "cifar10-smoke.seed0.jsonl",
                                         "cifar10-smoke.seed1.jsonl"}
    seed0 = [json.loads(line) for line in (out / "cifar10-smoke.seed0.jsonl").read_text().splitlines()]
    assert [(r["method"], r["countermeasure"], r["status"]) for r in seed0] == [
        ("clean", "none", "ok"), ("ops", "none", "ok"), ("ops", "grayscale", "failed")]
    assert seed0[1]["final_acc"] == 0.2
    republished = [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]
    (again,) = build_leaderboards(republished)
    (board,) = build_leaderboards(rows)
    assert again.mean.equals(board.mean) and again.status.equals(board.status)


# the commits the published quick rows come from: the protocol's 12 methods; issue 37's rows; its `histeq` rows
BOARD_COMMIT, ADDED_COMMIT, HISTEQ_COMMIT = "106d349", "519a638", "147ca95"


def test_the_published_leaderboard_renders_its_table():
    """The quick table: rendered from its rows. Whether its rows are still current is `python -m benchmark stale`'s
    question (tests/test_currency.py), not a test's: a version bump must not fail the suite until hours of cells
    are re-run."""
    rows = [json.loads(line) for path in PUBLISHED_ROWS for line in path.read_text().splitlines()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (board,) = build_leaderboards(rows)
    assert [str(w.message) for w in caught] == [f"leaderboard {board.title}: {board.provenance[0]}"]
    assert board.provenance[0].startswith("rows come from 3 git commits")  # a clean checkout, one set of libraries
    published = pd.read_csv(PUBLISHED / "cifar10-quick.csv", index_col="method")
    pd.testing.assert_frame_equal(board.mean.round(2), published[board.mean.columns], check_names=False)
    assert {r["schema"] for r in rows} == {2} and not any(r["git_dirty"] for r in rows)
    by_commit = {c: [r for r in rows if r["git_commit"].startswith(c)] for c in (BOARD_COMMIT, ADDED_COMMIT, HISTEQ_COMMIT)}
    assert sum(map(len, by_commit.values())) == len(rows) and len(by_commit[BOARD_COMMIT]) == 684
    assert {r["countermeasure"] for r in by_commit[HISTEQ_COMMIT]} == {"histeq"}
    assert {r["method"] for r in by_commit[ADDED_COMMIT] if r["countermeasure"] not in board.extra} == {"hypo", "sem"}
    assert board.extra == ("coin", "channel_norm", "histeq", "lab_whiten", "yuv_whiten")
    assert (board.seeds.to_numpy() == 3).all(), "every cell, the extra suite's included, has three seeds"


def test_the_published_detection_rows_cover_the_board_and_give_its_column():
    """`detection.jsonl` beside the quick table: both detectors for every row of the board at its three seeds, from
    one clean commit, and the table's `detect_auroc` is their best detector's AUROC, mean over the seeds."""
    rows = [json.loads(line) for line in (PUBLISHED / DETECTION_FILE).read_text().splitlines()]
    published = pd.read_csv(PUBLISHED / "cifar10-quick.csv", index_col="method")
    cells = {(r["method_label"], r["seed"], r["detector"]) for r in rows}
    assert len(cells) == len(rows) == len(published) * 3 * 2
    assert {label for label, _, _ in cells} == set(published.index)
    assert {r["git_commit"][:7] for r in rows} == {ADDED_COMMIT} and not any(r["git_dirty"] for r in rows)
    best = pd.DataFrame(rows).groupby(["method_label", "seed"])["auroc"].max().groupby("method_label").mean()
    pd.testing.assert_series_equal(best, published[DETECT_COLUMN].loc[best.index], check_names=False, atol=5e-4, rtol=0)


def test_schema1_rows_render_and_an_old_failed_row_joins_its_configuration():
    fidelity = PUBLISHED.parent / "fidelity" / "countermeasures-quick"
    rows = [json.loads(line) for line in (fidelity / "results.jsonl").read_text().splitlines()]
    (board,) = build_leaderboards(rows)
    published = pd.read_csv(fidelity / "leaderboard.csv", index_col="method")
    pd.testing.assert_frame_equal(board.table.round(2), published, check_names=False)
    failed = dict(rows[0], status="failed", final_acc=None)  # an old failed row carries no parameters
    del failed["method_params"], failed["countermeasure_params"]
    (board,) = build_leaderboards(rows + [failed])
    assert board.status.loc["clean", rows[0]["countermeasure"]] == "ok"  # the earlier ok row of the cell still shows
    failed["cell_id"] = f"{rows[0]['cell_id']}-seed1"
    failed["seed"] = 1
    (board,) = build_leaderboards(rows + [failed])
    assert list(board.mean.index) == list(published.index)  # the failed row joins its configuration's row


def test_spread_bounds_and_unstable_cells_from_several_seeds(tmp_path):
    rows = [_row("ops", "none", s, a) for s, a in ((0, 0.20), (1, 0.25), (2, 0.40))]  # 20–40: unstable
    rows += [_row("ops", "grayscale", s, a) for s, a in ((0, 0.30), (1, 0.32), (2, 0.34))]
    rows += [_row("em", "none", s, a) for s, a in ((0, 0.10), (1, 0.12))]
    rows += [_row("em", "grayscale", s, a) for s, a in ((0, 0.50), (1, 0.52))]
    (board,) = build_leaderboards(rows)
    assert board.seeds.loc["ops", "none"] == 3 and board.seeds.loc["em", "none"] == 2
    assert board.low.loc["ops", "none"] == pytest.approx(20.0) and board.high.loc["ops", "none"] == pytest.approx(40.0)
    assert board.unstable.loc["ops", "none"] and not board.unstable.loc["ops", "grayscale"]
    assert not board.unstable.loc["em"].any()
    # worst is bounded by the per-cell lowest and highest seeds: ops max(20, 30)..max(40, 34)
    assert (board.summary_low.loc["ops", "worst"], board.summary_high.loc["ops", "worst"]) == pytest.approx((30.0, 40.0))
    assert board.seed_table(2).loc["ops", "none"] == pytest.approx(40.0) and pd.isna(board.seed_table(2).loc["em", "none"])
    # ops (worst 32.0, 30–40) ranks before em (51.0, 50–52); their bounds do not overlap
    assert [(m, ties) for m, _, _, _, ties in board.ranking()] == [("ops", False), ("em", False)]

    run = _write(tmp_path / "run", rows)
    write_leaderboard([run], run)
    md = (run / "leaderboard.md").read_text()
    assert "28.3 ± 8.5†" in md and "† Unstable cell" in md and "20.0–40.0†" in md
    assert "32.0 [30.0–40.0]" in md and "1. `ops`: worst 32.0" in md
    cells = pd.read_csv(run / "leaderboard_cells.csv")
    ops_none = cells[(cells.method == "ops") & (cells.countermeasure == "none")].iloc[0]
    assert (ops_none.seeds, ops_none["min"], ops_none["max"], bool(ops_none.unstable)) == (3, 20.0, 40.0, True)


def test_methods_whose_bounds_overlap_are_not_ranked_apart():
    rows = [_row("ops", "none", s, a) for s, a in ((0, 0.30), (1, 0.45))]
    rows += [_row("em", "none", s, a) for s, a in ((0, 0.35), (1, 0.40))]
    (board,) = build_leaderboards(rows)
    assert [(m, ties) for m, _, _, _, ties in board.ranking()] == [("em", True), ("ops", False)]


def _measured(psnr: float | None, linf: float, ssim: float = 0.9, l2: float = 1.0) -> dict:
    return {"perturbation": {"psnr": psnr, "linf": linf, "l2_mean": l2, "ssim": ssim}}


def test_the_board_shows_perceptibility_and_ranks_within_budget_classes(tmp_path):
    """Measures are the mean over seeds of each protected set (one per seed, whatever the column); a method is
    classed by its PSNR band and ranked by `worst` only against its class."""
    rows = [_row("clean", cm, 0, 0.6, **_measured(None, 0.0, 1.0, 0.0)) for cm in ("none", "jpeg10")]
    spec = {"em": (31.0, 33.0, 0.20, 0.30), "tap": (32.0, 32.0, 0.10, 0.40), "cuda": (19.0, 19.5, 0.15, 0.25),
            "dh": (28.0, 28.0, 0.50, 0.55)}
    for method, (psnr0, psnr1, acc_none, acc_jpeg) in spec.items():
        for seed, psnr in enumerate((psnr0, psnr1)):
            for cm, acc in (("none", acc_none), ("jpeg10", acc_jpeg)):
                rows.append(_row(method, cm, seed, acc, budget="L∞ ≤ 8/255", **_measured(psnr, 8 / 255)))
    board, = build_leaderboards(rows)
    table = board.perceptibility
    assert table.at["em", "psnr"] == pytest.approx(32.0) and table.at["em", "linf"] == pytest.approx(8.0)
    assert table.at["clean", "class"] == "reference" and table.at["clean", "psnr"] == float("inf")
    assert [table.at[m, "class"] for m in ("em", "tap", "dh", "cuda")] == ["≥ 30 dB", "≥ 30 dB", "24–30 dB", "< 24 dB"]
    # em's worst (30 %) beats tap's (40 %) within their class; cuda, stronger than both, is alone in its own
    assert table.at["em", "rank"] == 1 and table.at["tap", "rank"] == 2 and table.at["cuda", "rank"] == 1
    assert pd.isna(table.at["clean", "rank"])
    write_leaderboard([_write(tmp_path / "run", rows)], tmp_path / "out")
    csv = pd.read_csv(tmp_path / "out" / "leaderboard.csv", index_col="method")
    assert csv.at["cuda", "budget_class"] == "< 24 dB" and csv.at["em", "psnr_db"] == pytest.approx(32.0)
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "PSNR (dB)" in markdown and "## Rank within budget class" in markdown
    assert markdown.index("1. `em`: worst 30.0") < markdown.index("2. `tap`: worst 40.0") < markdown.index("**24–30 dB**")
