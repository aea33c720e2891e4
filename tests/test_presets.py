"""Preset overrides: `NAME[field=value,...]` changes fields, keeps the name and gets its own identity."""
import pytest
import torch

from benchmark.cli import main
from benchmark.identity import digest, preset_identity
from benchmark.presets import PRESETS, get_preset, plumbing_only, preset_label


def test_override_changes_only_the_named_fields():
    base, changed = PRESETS["quick"], get_preset("quick[train_per_class=1000, epochs=20,test_per_class=none]")
    assert (changed.name, changed.train_per_class, changed.epochs) == ("quick", 1000, 20)
    assert changed.test_per_class is None and changed.lr == base.lr and changed.model == base.model
    assert digest(preset_identity(changed)) != digest(preset_identity(base))
    assert get_preset("quick") is base and get_preset("quick[]") is base


def test_label_names_the_changes_and_round_trips():
    changed = get_preset("quick[epochs=20,nesterov=false]")
    assert preset_label(changed) == "quick[epochs=20,nesterov=False]"
    assert get_preset(preset_label(changed)) == changed
    assert preset_label(PRESETS["paper"]) == "paper"
    assert plumbing_only("smoke[epochs=2]") and not plumbing_only("quick[epochs=2]")


def test_paper_fast_is_the_paper_preset_with_the_fast_victim_and_its_own_identity():
    fast = get_preset("paper-fast")
    assert fast.name == "paper" and fast.model == "airbench" and fast.train_per_class is None and fast.epochs == 10
    label = preset_label(fast)
    assert label.startswith("paper[model=airbench,epochs=10,") and get_preset(label) == fast  # rows say what changed
    assert digest(preset_identity(fast)) != digest(preset_identity(PRESETS["paper"]))
    with pytest.raises(KeyError, match="or paper-fast"):
        get_preset("paper-slow")


@pytest.mark.parametrize("spec, named", [
    ("quik", "valid presets: smoke, quick, paper"),
    ("quick[foo=1]", "'foo=1'"),
    ("quick[epochs]", "'epochs'"),
    ("quick[epochs=x]", "bad value for epochs"),
    ("quick[nesterov=maybe]", "true or false"),
    ("quick[epochs=0]", "epochs must be > 0, got 0"),
    ("quick[weight_decay=-1]", "weight_decay must be >= 0"),
    ("quick[model=resnet19]", "resnet18"),
])
def test_bad_override_names_the_value_and_the_choices(spec, named):
    with pytest.raises(KeyError) as err:
        get_preset(spec)
    assert named in err.value.args[0]


def test_run_refuses_a_bad_preset_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", "--preset", "quick[epochs=x]", "--out", str(tmp_path / "run")])
    assert "bad value for epochs" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_at_a_changed_preset_labels_its_rows(tmp_path, data_root):
    from benchmark.store.rows import read_rows

    out = tmp_path / "run"
    assert main(["run", "--methods", "ops", "--no-clean", "--preset", "smoke[epochs=1]", "--out", str(out),
                 "--data-root", str(data_root), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    (row,) = read_rows([out])
    assert row["preset"] == "smoke[epochs=1]" and row["identity"]["preset"]["epochs"] == 1
    assert len(row["history"]) == 1 and row["cell_id"].startswith("cifar10/smoke/")
    assert row["machine"]["isa"] == torch.backends.cpu.get_cpu_capability() and row["machine"]["cores"] >= 1
