"""The command line as a new user meets it: every option explained, one default preset, clear errors that leave
nothing behind."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmark.cli import build_parser, main

REFERENCE = Path(__file__).resolve().parents[1] / "references" / "cifar10-resnet18.csv"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_of_every_command_has_help_text():
    bare = [f"{name} {'/'.join(a.option_strings)}" for name, sub in _subcommands().items() for a in sub._actions
            if a.option_strings and a.help is None]
    assert bare == []


@pytest.mark.parametrize("command", ["run", "show", "bands", "trace", "profile", "export", "frontier"])
def test_commands_that_take_a_preset_default_to_quick(command):
    preset = next(a for a in _subcommands()[command]._actions if "--preset" in a.option_strings)
    assert preset.default == "quick" and not preset.required


def test_a_missing_dataset_fails_before_the_run_folder_is_made(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--methods", "ops", "--preset", "smoke", "--data-root", str(tmp_path / "nowhere"),
                 "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "dataset 'cifar10' not found" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_compare_names_a_file_that_holds_no_rows(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes\nnot rows\n")
    assert main(["compare", str(text), "--reference", str(REFERENCE)]) == 2
    assert f"{text} is not a results file: none of its 2 line(s) is a result row" in capsys.readouterr().err


def test_list_shows_the_values_a_preset_gives_instead_of_placeholders(capsys):
    assert main(["list", "methods", "--names", "em"]) == 0
    quick = capsys.readouterr().out
    assert "steps=preset's (10 at quick)" in quick and "arch=preset's ('fastcnn' at quick)" in quick
    assert "eps=8.0 [strength]" in quick and "steps=0" not in quick
    assert main(["list", "methods", "--names", "em", "--preset", "paper"]) == 0
    assert "steps=preset's (20 at paper)" in capsys.readouterr().out
    assert main(["list", "countermeasures", "--names", "adv_train", "--preset", "smoke"]) == 0
    assert "adv_epochs=preset's (4 at smoke)" in capsys.readouterr().out


def test_every_command_has_a_handler_and_every_handler_a_command():
    from benchmark.cli import COMMANDS

    assert set(COMMANDS) == set(_subcommands())
