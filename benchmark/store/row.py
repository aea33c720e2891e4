"""The result row: one cell's identity, outcome and provenance; the schema of every results.jsonl."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 2


def _doc(text: str, default: Any = None) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=type(default), metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass
class Row:
    """A finished or failed cell. Accuracies are fractions in [0, 1]; ids are full SHA-256 hex digests."""

    cell_id: str = _doc("dataset/preset/model/method/countermeasure/seedS/ (+ ratioR/ below ratio 1) + the SHA-256 of `identity`")
    config_id: str = _doc("SHA-256 of `identity` without the seed: rows that differ only in seed share it")
    status: str = _doc("`ok` or `failed`")
    dataset: str = _doc("dataset name")
    preset: str = _doc("preset name, followed by the fields changed from it: `quick[epochs=20]`")
    preset_id: str = _doc("SHA-256 of the preset's full definition")
    model: str = _doc("victim network")
    seed: int = _doc("cell seed (generation, pre-processing and victim streams derive from it)")
    poison_ratio: float = _doc("share of the training set that is protected, class-balanced; the rest is clean", 1.0)
    method: str = _doc("registered method name")
    method_id: str = _doc("SHA-256 of the method's identity (name, version, distribution, effective settings)")
    method_label: str = _doc("the name, plus the parameters that differ from the defaults: `dh[lfc_weight=0]`")
    method_params: dict = _doc("the method's constructor parameters as given", {})
    countermeasure: str = _doc("registered countermeasure name")
    countermeasure_id: str = _doc("SHA-256 of the countermeasure's identity")
    countermeasure_label: str = _doc("as `method_label`")
    countermeasure_params: dict = _doc("the countermeasure's constructor parameters as given", {})
    identity: dict = _doc(
        "everything `cell_id` hashes: dataset, SHA-256 of the train and test images, preset definition, victim "
        "model code, method and countermeasure (name, version, distribution, effective settings), seed, trainer "
        "version", {})
    error: str | None = _doc("the exception of a failed cell")
    traceback: str | None = _doc("its traceback")
    final_acc: float | None = _doc("clean test accuracy after the last epoch")
    peak_acc: float | None = _doc("best clean test accuracy at any evaluation")
    train_acc: float | None = _doc("accuracy on the (protected, pre-processed) training set, no augmentation")
    history: list = _doc("[epoch, clean test accuracy] at every evaluation", [])
    images_per_second: float | None = _doc("victim training throughput")
    cuda_graph: bool | None = _doc("whether the victim's steps were replayed as a CUDA graph")
    perturbation: dict | None = _doc("linf, l2_mean, l2_max, l0_mean, l0_max, psnr, ssim, changed_fraction of the protected set")
    budget: str | None = _doc("the method instance's threat model, checked on the saved uint8 set")
    method_notes: dict = _doc("what the method reported (effective settings, stopping statistics)", {})
    generation_cached: bool | None = _doc("true only when the protected set came from an earlier run's cache")
    countermeasure_family: str | None = _doc("augmentation, pre-processing, training, purification or none")
    countermeasure_stages: list = _doc("the stages it overrides: preprocess, augment, training_step", [])
    poisoned: int | None = _doc("training images that carry the protection")
    train_size: int | None = _doc("training images")
    test_size: int | None = _doc("test images")
    seconds: dict = _doc("wall seconds: generate, preprocess, train, total", {})
    device: str | None = _doc("torch device the cell ran on")
    device_name: str | None = _doc("GPU or CPU model")
    threads: int | None = _doc("torch CPU threads of the process that ran the cell")
    machine: dict = _doc("what CPU kernels depend on: CPU model and vendor/family/model/stepping, the ISA torch "
                         "dispatches to, BLAS, MKL and oneDNN versions, logical cores, architecture", {})
    git_commit: str | None = _doc("commit of the engine's checkout")
    git_dirty: bool | None = _doc("whether tracked files differed from that commit")
    versions: dict = _doc("Python, uebench and library versions, and the version of each plugin that made the row (rows before 2026-12-07: every installed plugin's)", {})
    carried_from: str | None = _doc("the rows file this finished row was copied from instead of being computed (the "
                                    "published board by default, or --reuse); absent or None: computed in this folder")
    started: str | None = _doc("UTC start time")
    finished: str | None = _doc("UTC end time")
    schema: int = _doc("row schema version", SCHEMA_VERSION)

    def as_dict(self) -> dict[str, Any]:
        """The row as the JSON object written to results.jsonl."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Row:
        """A row read back from results.jsonl, checked against its schema version: the fields a board needs are
        present, every known field has its type, the status and poison ratio are valid; raises RowError naming the
        cell and what is wrong. Keys the schema does not know (e.g. `non_finite`) are left out."""
        if not isinstance(data, dict):
            raise RowError(f"not a JSON object: {str(data)[:40]!r}")
        cell = data.get("cell_id")
        schema = data.get("schema", 1)
        if schema not in REQUIRED:
            raise RowError(f"cell {cell!r} has unknown schema {schema!r} (known: {', '.join(map(str, REQUIRED))})")
        lacking = [f for f in REQUIRED[schema] if data.get(f) is None]
        if lacking:
            raise RowError(f"cell {cell!r} lacks {', '.join(lacking)}")
        for f in _FIELDS:
            value = data.get(f.name)
            if value is not None and not _is(value, f.type):
                raise RowError(f"cell {cell!r} has {f.name} {value!r}, expected {f.type}")
        if data["status"] not in STATUSES:
            raise RowError(f"cell {cell!r} has status {data['status']!r} (valid: {', '.join(STATUSES)})")
        ratio = data.get("poison_ratio", 1.0)
        if not 0 < ratio <= 1:
            raise RowError(f"cell {cell!r} has poison_ratio {ratio!r}, expected a fraction in (0, 1]")
        return cls(**{f.name: data[f.name] for f in _FIELDS if f.name in data})


class RowError(ValueError):
    """A JSON object that is not a valid row of its schema version."""


STATUSES = ("ok", "failed")
# the fields a row of each schema version must carry; schema-1 rows predate the ids and labels (boards derive them)
_SCHEMA1 = ("cell_id", "status", "dataset", "preset", "model", "seed", "method", "countermeasure")
REQUIRED = {1: _SCHEMA1, 2: (*_SCHEMA1, "preset_id", "method_id", "method_label", "countermeasure_id",
                            "countermeasure_label")}
_FIELDS = dataclasses.fields(Row)
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "dict": (dict,), "list": (list,)}


def _is(value: Any, annotation: str) -> bool:
    """Whether a JSON value has the annotated type (`float | None`: an int or a float; bool is no number)."""
    kinds = [k.strip() for k in annotation.split("|") if k.strip() != "None"]
    if isinstance(value, bool):
        return "bool" in kinds
    return any(isinstance(value, _TYPES[k]) for k in kinds)


def schema_table() -> list[tuple[str, str]]:
    """(field, description) of every row field, in order: the documented schema, generated from the code."""
    return [(f.name, f.metadata["doc"]) for f in dataclasses.fields(Row)]


def schema_markdown() -> str:
    """The schema as the Markdown table in docs/results.md (a test keeps the two equal)."""
    return "\n".join(["| field | meaning |", "|---|---|", *(f"| `{name}` | {doc} |" for name, doc in schema_table())])
