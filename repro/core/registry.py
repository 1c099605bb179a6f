"""One small registry for every family of named pieces (timm-style).

Detectors, sharpness definitions, SAM variants and parameter selections, unlearning losses,
judges, models and distribution shifts all use this class, so they share one API::

    from repro.core.registry import Registry

    DETECTORS = Registry("detector")

    @DETECTORS.register("msp")              # decorator; the class gets ``.name = "msp"``
    class MSP: ...

    DETECTORS.get("msp", **kwargs)          # builds the entry: kwargs are checked against its signature
    DETECTORS.entry("msp")                  # the registered object itself (class / function / value)
    DETECTORS.list()                        # names, in registration order (sorted=True for sorted)
    DETECTORS.items()                       # (name, entry) pairs
    "msp" in DETECTORS, len(DETECTORS)

``get`` calls the entry with the keyword arguments when it is callable (a class or a factory
function) and returns it unchanged when it is a value (e.g. a frozen dataclass instance);
``get`` of a value with keyword arguments is an error. A misspelled name or keyword fails with
one line that lists what is allowed (DESIGN.md: "clear errors for bad input").

``loader``: an optional zero-argument function that imports the modules registering into this
registry (e.g. every module of a package), run once before the first lookup, so a new module
with ``@REG.register(...)`` is picked up without editing any list.
"""
from __future__ import annotations

import builtins
import inspect
from typing import Any, Callable, Iterator, Optional

__all__ = ["Registry", "allowed_kwargs", "InertParameterWarning", "warn_inert"]


def allowed_kwargs(fn: Callable) -> Optional[set]:
    """Keyword names ``fn`` accepts; ``None`` when it takes ``**kwargs`` (anything goes)."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):  # builtins without a signature: let the call itself check
        return None
    names = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
            names.add(p.name)
    return names


class Registry:
    """Name -> entry map for one concept (``kind`` is used in error messages, e.g. "detector")."""

    def __init__(self, kind: str, *, loader: Optional[Callable[[], None]] = None, set_name: bool = True):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._loader = loader
        self._loaded = loader is None
        self._set_name = set_name

    # -- registration ------------------------------------------------------------------
    def register(self, name: str, obj: Any = None):
        """``@reg.register("name")`` on a class/function, or ``reg.register("name", value)``.

        Registering a different object under a taken name is an error (two modules claiming one
        name would otherwise depend on import order)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def add(o):
            old = self._entries.get(name)
            if old is not None and old is not o:
                raise ValueError(f"{self.kind} {name!r} registered twice "
                                 f"({getattr(old, '__name__', old)!r}, {getattr(o, '__name__', o)!r})")
            self._entries[name] = o
            if self._set_name and inspect.isclass(o):
                o.name = name
            return o

        return add if obj is None else add(obj)

    # -- lookup --------------------------------------------------------------------------
    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            self._loader()

    def entry(self, name: str) -> Any:
        """The registered object itself (no instantiation)."""
        self._load()
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.list(sorted=True)) or 'none'}")
        return self._entries[name]

    def get(self, name: str, **kwargs) -> Any:
        """Build the entry ``name`` with ``kwargs`` (validated against its signature)."""
        obj = self.entry(name)
        if not callable(obj):
            if kwargs:
                raise ValueError(f"{self.kind} {name!r} takes no keyword arguments; got {sorted(kwargs)}")
            return obj
        self.check_kwargs(name, kwargs)
        return obj(**kwargs)

    def check_kwargs(self, name: str, kwargs: dict) -> None:
        allowed = allowed_kwargs(self.entry(name))
        if allowed is None:
            return
        bad = sorted(set(kwargs) - allowed)
        if bad:
            raise ValueError(f"{self.kind} {name!r} has no keyword argument(s) {bad}; "
                             f"allowed: {', '.join(sorted(allowed)) or 'none'}")

    def params(self, name: str) -> dict:
        """Keyword arguments of the entry and their defaults (``inspect.Parameter.empty`` if none)."""
        obj = self.entry(name)
        if not callable(obj):
            return {}
        target = obj.__init__ if inspect.isclass(obj) else obj
        return {p.name: p.default for p in inspect.signature(target).parameters.values()
                if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def list(self, sorted: bool = False) -> list[str]:  # noqa: A002 - mirrors timm.list_models(sorted=...)
        self._load()
        names = list(self._entries)
        return builtins.sorted(names) if sorted else names

    def items(self) -> list[tuple[str, Any]]:
        self._load()
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


class InertParameterWarning(UserWarning):
    """A hyperparameter was given a value that cannot change the result in this configuration."""


def warn_inert(owner: str, param: str, why: str, stacklevel: int = 3) -> None:
    """The shared policy for hyperparameters without effect: a warning naming the parameter and why
    (Python's default filter shows each call site once). Values that are simply invalid raise
    ``ValueError`` naming the parameter instead."""
    import warnings

    warnings.warn(f"{owner}: hyperparameter {param!r} has no effect here: {why}", InertParameterWarning,
                  stacklevel=stacklevel)
