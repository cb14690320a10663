"""One plugin mechanism: built-ins found by importing their package, others declared as entry points.

Every kind of plugin has one entry-point group:

=========================================  ===========================================================
group                                      a plugin is
=========================================  ===========================================================
``distillguard.signals``                   a ``signals.Enricher`` subclass
``distillguard.scorers``                   a ``detect.Scorer`` subclass
``distillguard.watermark_schemes``         a ``watermark.Scheme`` subclass
``distillguard.logits_processors``         a factory of ``transformers.LogitsProcessor`` (lab server)
=========================================  ===========================================================

A built-in is one file in its kind's package, found by importing every module
of the package: adding one is writing one file. Another installed package adds
a plugin by declaring an entry point in the group, named as users select it::

    [project.entry-points."distillguard.signals"]
    language = "my_package.language:LanguageEnricher"

``register`` adds one in-process (tests, notebooks). A plugin that fails to
load, is not of its kind, or takes a name already used is a ``PluginError``.

>>> import distillguard.signals as signals
>>> [cls.name for cls in discover(signals, signals.Enricher, SIGNALS_GROUP)][:2]
['capability', 'elicitation']
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from functools import cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import TypeVar

from distillguard.errors import PluginError

__all__ = ["LOGITS_PROCESSORS_GROUP", "SCORERS_GROUP", "SIGNALS_GROUP", "WATERMARK_SCHEMES_GROUP",
           "discover", "installed", "merged", "register"]

SIGNALS_GROUP = "distillguard.signals"
SCORERS_GROUP = "distillguard.scorers"
WATERMARK_SCHEMES_GROUP = "distillguard.watermark_schemes"
LOGITS_PROCESSORS_GROUP = "distillguard.logits_processors"

T = TypeVar("T")

_registered: dict[str, dict[str, object]] = {}  # group → name → plugin, added in-process by ``register``


def discover(package: ModuleType, base: type[T], group: str) -> list[type[T]]:
    """Concrete subclasses of ``base`` defined in ``package`` and those installed under ``group``, by name.

    A class is keyed by its ``name`` attribute (else its class name); one with
    ``abstract = True`` is a base, not a plugin.
    """
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    built_in = {_class_name(cls): cls for cls in _subclasses(base) if _defined_in(cls, package)}
    plugins = merged(built_in, group, accepts=lambda obj: isinstance(obj, type) and issubclass(obj, base),
                     what=f"a subclass of {base.__module__}.{base.__qualname__}", key=_class_name)
    return [plugins[name] for name in sorted(plugins)]


def merged(built_in: Mapping[str, T], group: str, *, accepts: Callable[[object], bool], what: str,
           key: Callable[[T], str] | None = None) -> dict[str, T]:
    """``built_in`` plus the plugins of ``group`` (entry points and ``register``); ``accepts`` checks each.

    ``key`` names a plugin (default: its entry-point or registered name).
    """
    out = dict(built_in)
    for label, plugin in [*installed(group).items(), *_registered.get(group, {}).items()]:
        if not accepts(plugin):
            raise PluginError(f"plugin {label!r} of {group} is {plugin!r}, not {what}")
        name = key(plugin) if key else label  # type: ignore[arg-type]
        if name in out and out[name] is not plugin:
            raise PluginError(f"plugin {label!r} of {group} takes the name {name!r} of {out[name]!r}")
        out[name] = plugin  # type: ignore[assignment]
    return out


@cache
def installed(group: str) -> dict[str, object]:
    """The objects other installed packages declare under the entry-point ``group``, by entry-point name.

    Read once per process (call ``installed.cache_clear()`` after installing one at run time).
    """
    found: dict[str, object] = {}
    for point in sorted(entry_points(group=group), key=lambda p: p.name):
        try:
            found[point.name] = point.load()
        except Exception as exc:  # any error of foreign code while importing: name the plugin
            dist = point.dist.name if point.dist else "an unknown distribution"
            raise PluginError(f"plugin {point.name!r} of {group} ({point.value}, from {dist}) "
                              f"cannot be loaded: {exc}") from exc
    return found


def register(group: str, name: str, plugin: object) -> None:
    """Add ``plugin`` to ``group`` under ``name`` for this process (tests, notebooks)."""
    _registered.setdefault(group, {})[name] = plugin


def _subclasses(base: type[T]) -> list[type[T]]:
    """Every concrete subclass of ``base`` imported so far."""
    stack, found = list(base.__subclasses__()), []
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if not cls.__dict__.get("abstract", False) and not inspect.isabstract(cls):
            found.append(cls)
    return found


def _defined_in(cls: type, package: ModuleType) -> bool:
    return cls.__module__ == package.__name__ or cls.__module__.startswith(f"{package.__name__}.")


def _class_name(cls: type) -> str:
    return str(getattr(cls, "name", cls.__name__))
