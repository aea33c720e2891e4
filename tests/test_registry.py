"""Registries: decorator registration, refusal of duplicates, clear errors, entry-point plugins."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pandas as pd
import pytest

from benchmark.plugins import Method
from benchmark.registry import UnknownNameError, countermeasures, methods, models


def test_builtins_are_registered_in_table_order():
    assert methods.names()[:15] == ["clean", "dh", "dh-8", "dh-robust", "em", "em-classwise", "rem", "sem", "tap", "hypo",
                                    "ops", "lsp", "ar", "cuda", "semantic-add"]
    assert countermeasures.names()[:3] == ["none", "cutout", "cutmix"]
    assert {"tinycnn", "fastcnn", "resnet18"} <= set(models.names())


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as err:
        methods.get("nope")
    assert "nope" in str(err.value) and "clean, dh, dh-8, dh-robust, em, em-classwise, rem, sem, tap, hypo, ops" in str(err.value)


def test_duplicate_name_is_refused(temp_plugin):
    @dataclass
    class Other(Method):
        """Another."""

    with pytest.raises(ValueError, match="already registered"):
        methods.register("ops")(Other)


@pytest.mark.parametrize("name", ["worst", "mean", "psnr_db", "budget_class"])
def test_a_countermeasure_may_not_take_a_board_column_s_name(name):
    """A countermeasure is a column of the board; `worst`, `mean` and the budget measures are columns too."""
    from benchmark.plugins import Countermeasure

    @dataclass
    class Shadow(Countermeasure):
        """Would shadow a summary column."""

    with pytest.raises(ValueError, match=f"countermeasure name '{name}' is reserved"):
        countermeasures.register(name)(Shadow)
    assert name not in countermeasures.names()


def test_the_reserved_names_cover_every_column_the_boards_add():
    from benchmark.registry import SUMMARY_NAMES
    from benchmark.report.leaderboard import MEASURE_COLUMNS, SUMMARY_COLUMNS
    from benchmark.report.perceptibility import COLUMNS

    assert set(SUMMARY_COLUMNS) | set(MEASURE_COLUMNS) | set(COLUMNS) <= set(SUMMARY_NAMES)


def test_a_summary_must_take_a_reserved_free_name(monkeypatch):
    """Summaries are registered like plugins: a name no countermeasure can take, once."""
    from benchmark.report import summaries

    with pytest.raises(ValueError, match="'spread' is not a reserved name"):
        summaries.summary("spread")(lambda table: table.max(axis=1) - table.min(axis=1))
    with pytest.raises(ValueError, match="'worst' is already registered"):
        summaries.summary("worst")(lambda table: table.min(axis=1))
    monkeypatch.setattr(summaries, "SUMMARY_NAMES", (*summaries.SUMMARY_NAMES, "spread"))
    monkeypatch.setattr(summaries, "SUMMARIES", dict(summaries.SUMMARIES))
    summaries.summary("spread")(lambda table: table.max(axis=1) - table.min(axis=1))
    table = pd.DataFrame({"none": [60.0, 20.0], "jpeg10": [30.0, 25.0]}, index=["em", "ops"])
    out = summaries.summarise(table)
    assert list(out.columns) == ["worst", "mean", "spread"]
    assert out.loc["em"].tolist() == [60.0, 45.0, 30.0] and out.loc["ops"].tolist() == [25.0, 22.5, 5.0]


def test_expand_all_and_wildcards():
    assert methods.expand("all") == [n for n in methods.names() if n != "semantic-add"]  # a control: in_all False
    assert methods.expand("lsp,ops,lsp") == ["lsp", "ops"]
    assert countermeasures.names("jpeg*") == ["jpeg10", "jpeg50"]


def test_a_plugin_beyond_the_protocol_joins_extra_and_every_but_not_all(temp_plugin):
    from benchmark.plugins import Countermeasure

    @dataclass
    class Beyond(Countermeasure):
        """A defence beyond the paper's protocol."""

        suite = "extra"

    temp_plugin(countermeasures, "zz-beyond", Beyond)
    selections = countermeasures.selections()
    assert "zz-beyond" not in selections["all"] and selections["extra"][-1] == "zz-beyond"
    assert selections["extra"][:-1] == ["coin", "channel_norm", "histeq", "lab_whiten", "yuv_whiten"]
    assert selections["every"] == [*selections["all"], *selections["extra"]]
    assert countermeasures.expand("none,extra") == ["none", *selections["extra"]]
    assert countermeasures.expand("every") == selections["every"]


@pytest.mark.parametrize("name", ["all", "extra", "every", "main"])
def test_a_plugin_may_not_take_a_selection_s_name(name):
    @dataclass
    class Shadow(Method):
        """Would shadow a selection."""

    with pytest.raises(ValueError, match=f"method name '{name}' is reserved: it selects several methods"):
        methods.register(name)(Shadow)


def test_an_unknown_suite_is_refused_naming_the_valid_ones():
    @dataclass
    class Lost(Method):
        """Declares a suite nobody selects."""

        suite = "misc"

    with pytest.raises(ValueError, match="declares suite 'misc'; valid suites: main, extra"):
        methods.register("zz-lost")(Lost)
    assert "zz-lost" not in methods


INVERT_ONE = '''
    from dataclasses import dataclass
    from benchmark.plugins import Budget, Method
    from benchmark.registry import register_method

    @register_method("invert-one")
    @dataclass
    class InvertOne(Method):
        """Test plugin: shifts every value of the first channel by `step`/255."""
        step: int = 4
        budget = Budget("linf", 8 / 255)

        def generate(self, images, labels, ctx):
            out = images.clone()
            out[:, 0] = (out[:, 0].int() + self.step).clamp(0, 255).to(out.dtype)
            return out
'''


def test_entry_point_plugin_is_discovered_and_runs(installed_plugin, tmp_path, data_root):
    installed_plugin("thirdparty_ue", INVERT_ONE, "uebench.methods", "invert-one = thirdparty_ue")
    assert "invert-one" in methods.names()  # discovery imported the entry point's module, whose decorator filed it
    assert methods.get("invert-one").distribution == {"name": "thirdparty_ue", "version": "1.0"}

    # a fresh process (and its workers) finds it through PYTHONPATH, as after `pip install`
    listed = subprocess.run([sys.executable, "-m", "benchmark", "list", "methods"],
                            capture_output=True, text=True, check=True)
    assert "invert-one" in listed.stdout and "step=4" in listed.stdout
    run = subprocess.run(
        [sys.executable, "-m", "benchmark", "run", "--methods", "invert-one", "--no-clean", "--defenses", "none",
         "--preset", "smoke", "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
         "--data-root", data_root, "--no-progress"],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "run" / "leaderboard.csv").read_text().splitlines()[1].startswith("invert-one,")
