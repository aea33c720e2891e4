"""Name → plugin tables for methods, countermeasures and victim models."""
from __future__ import annotations

import fnmatch
import importlib
import types
import warnings
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that no registered plugin carries."""

    def __str__(self) -> str:
        return str(self.args[0])


class PluginLoadError(RuntimeError):
    """An entry-point plugin that could not be loaded or registered (raised only in strict mode)."""


class Registry(Generic[T]):
    """One kind of plugin: built-ins register by decorator, third parties by entry point. Each entry point
    loads on its own: a broken one is reported (`errors`, a warning) and the others keep working, unless
    `Registry.strict` is set (`--strict-plugins`), when it raises PluginLoadError."""

    strict: bool = False

    def __init__(self, kind: str, group: str, builtin_package: str, reserved: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.group = group
        self.reserved = reserved  # names a plugin of this kind may not take
        self._builtin_package = builtin_package
        self._entries: dict[str, T] = {}
        self._loaded = False
        self.errors: list[str] = []  # one line per entry point that failed to load

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that files a plugin under a short lowercase name; a name taken by another plugin, or a
        plugin already filed under another name, is refused, and so is the name of a selection."""
        if name != name.lower() or not name or any(c in name for c in " ,=.:"):
            raise ValueError(f"{self.kind} name {name!r} must be lowercase without spaces, commas, dots, colons or '='")
        if name in self.reserved:
            raise ValueError(f"{self.kind} name {name!r} is reserved: the boards use it for a column of their own "
                             f"(reserved: {', '.join(self.reserved)})")
        if name in SELECTIONS:
            raise ValueError(f"{self.kind} name {name!r} is reserved: it selects several {self.kind}s "
                             f"(reserved: {', '.join(SELECTIONS)})")

        def decorator(obj: T) -> T:
            suite = getattr(obj, "suite", MAIN_SUITE)
            if suite not in SUITES:
                raise ValueError(f"{self.kind} {name!r} declares suite {suite!r}; valid suites: {', '.join(SUITES)}")
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered by {_origin(self._entries[name])}")
            other = next((n for n, o in self._entries.items() if o is obj and n != name), None)
            if other is not None:  # renaming it would change what the first name runs
                raise ValueError(f"{_origin(obj)} is already registered as {self.kind} {other!r}; it cannot also be {name!r}")
            self._entries[name] = obj
            obj.name = name  # type: ignore[attr-defined]
            return obj

        return decorator

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        importlib.import_module(self._builtin_package)
        for ep in entry_points(group=self.group):
            before = dict(self._entries)
            try:
                obj = ep.load()
                # An entry point may name a module (its decorators ran on import) or the plugin itself.
                if not isinstance(obj, types.ModuleType):
                    self.register(ep.name)(obj)
            except Exception as exc:
                self._entries = before  # nothing half-registered stays
                package = ep.dist.name if ep.dist is not None else "an unknown package"
                message = (f"{self.kind} entry point {ep.name!r} of {package} ({ep.value}) was not loaded: "
                           f"{type(exc).__name__}: {exc}")
                if Registry.strict:
                    raise PluginLoadError(message) from exc
                self.errors.append(message)
                warnings.warn(message, stacklevel=2)
                continue
            if ep.dist is not None:  # its distribution's name and version join the plugin's identity
                for name in set(self._entries) - set(before):
                    self._entries[name].distribution = {"name": ep.dist.name, "version": ep.dist.version}

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names in registration order, filtered by a shell-style wildcard."""
        self._load()
        return [n for n in self._entries if fnmatch.fnmatchcase(n, pattern)]

    def get(self, name: str) -> T:
        """The plugin registered under `name`; an unknown name lists the valid ones."""
        self._load()
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self._entries)}")
        return self._entries[name]

    def selections(self) -> dict[str, list[str]]:
        """Each name `expand` takes for several plugins, with its members in table order: `all` (the protocol's: the
        `main` suite, controls left out), each other suite (`extra`: plugins that declare `suite = "extra"`), and
        `every` (every suite, controls left out)."""
        shown = [n for n in self.names() if getattr(self.get(n), "in_all", True)]
        table = {"all": [n for n in shown if getattr(self.get(n), "suite", MAIN_SUITE) == MAIN_SUITE]}
        table |= {suite: [n for n in shown if getattr(self.get(n), "suite", MAIN_SUITE) == suite]
                  for suite in SUITES if suite != MAIN_SUITE}
        table["every"] = shown
        return table

    def expand(self, spec: str | list[str]) -> list[str]:
        """A comma list of names and selections (`all`, `extra`, `every`: `selections()`) checked against the
        registry, order kept."""
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        groups = self.selections()
        names: list[str] = []
        for item in (i.strip() for i in items):
            if not item:
                continue
            for n in groups[item] if item in groups else [self.get(item).name]:  # type: ignore[attr-defined]
                if n not in names:
                    names.append(n)
        return names

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


MAIN_SUITE = "main"  # a plugin's default suite: the protocol's, which `all` selects
SUITES = (MAIN_SUITE, "extra")  # `extra`: beyond the protocol, selected by its own name
SELECTIONS = ("all", *SUITES, "every")  # names `expand` takes for several plugins; no plugin may take one


def _origin(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"


methods: Registry = Registry("method", "uebench.methods", "methods")
# A countermeasure is a board's column: it may not take the name of a summary or measure column beside it.
SUMMARY_NAMES = ("worst", "mean", "psnr", "psnr_db", "ssim", "linf", "linf_255", "l2", "threat", "budget_class",
                 "class_rank", "rank", "class", "detect", "detect_auroc")
countermeasures: Registry = Registry("countermeasure", "uebench.countermeasures", "countermeasures", SUMMARY_NAMES)
models: Registry = Registry("model", "uebench.models", "benchmark.models")

register_method = methods.register
register_countermeasure = countermeasures.register
register_model = models.register
