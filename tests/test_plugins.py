"""Plugins from another installed package: declared as entry points, found by the one registry.

Each test installs a real distribution: a module and a ``*.dist-info`` with its
``entry_points.txt`` in a folder put on ``sys.path``, as pip would leave them.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from distillguard import _registry
from distillguard.errors import PluginError
from distillguard.schema import EXCHANGES
from distillguard.signals import INPUT_COLUMNS, registered_enrichers, signals_schema
from distillguard.signals.parallel import enrich_to_signals
from distillguard.store import Store

PLUGIN = '''
from dataclasses import dataclass
from types import MappingProxyType

import pyarrow as pa
import pyarrow.compute as pc
from transformers import TemperatureLogitsWarper

from distillguard.detect.robust import RobustZScorer
from distillguard.signals.base import Enricher, with_columns
from distillguard.watermark.greenlist import GreenList


class PromptWords(Enricher):
    name = "prompt_words"
    columns = MappingProxyType({"prompt_words": pa.int32()})

    def enrich(self, batch):
        words = pc.list_value_length(pc.utf8_split_whitespace(pc.fill_null(batch.column("prompt_text"), "")))
        return with_columns(batch, {"prompt_words": words.cast(pa.int32())})


class CopyOfTiming(PromptWords):
    name = "timing"


class RobustAgain(RobustZScorer):
    name = "robust-again"


@dataclass(frozen=True)
class WideGreenList(GreenList):
    gamma: float = 0.5
    name: str = "wide-greenlist"


def temperature(value):
    return TemperatureLogitsWarper(float(value))
'''

Install = Callable[[dict[str, dict[str, str]]], None]


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Install]:
    """Install a distribution declaring ``{group: {name: "module:object"}}`` (module: ``PLUGIN``)."""

    def put(groups: dict[str, dict[str, str]]) -> None:
        (tmp_path / "dg_plugin_example.py").write_text(PLUGIN)
        info = tmp_path / "dg_plugin_example-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dg-plugin-example\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items())
            for group, points in groups.items()))
        sys.path.insert(0, str(tmp_path))
        _forget()

    yield put
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))
    sys.modules.pop("dg_plugin_example", None)
    _forget()


def _forget() -> None:
    importlib.invalidate_caches()
    _registry.installed.cache_clear()
    registered_enrichers.cache_clear()


def test_an_installed_enricher_is_found_and_its_column_reaches_the_signals_table(install: Install,
                                                                                   tmp_path: Path) -> None:
    install({_registry.SIGNALS_GROUP: {"prompt_words": "dg_plugin_example:PromptWords"}})
    assert "prompt_words" in [e.name for e in registered_enrichers()]
    assert signals_schema().field("prompt_words").type == pa.int32()
    assert signals_schema().names[-1] == "prompt_words"  # no ``after``: at the end
    exchanges = pa.RecordBatch.from_pylist(
        [{"exchange_id": "e1", "account_id": "a", "timestamp": dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC),
          "prompt_text": "Solve 12 + 7 step by step"}],
        schema=pa.schema([EXCHANGES.field(c) for c in INPUT_COLUMNS]))
    with Store.open(tmp_path / "s.duckdb") as store:
        store.append("signals", enrich_to_signals(exchanges))
        assert store.read("signals", ["exchange_id", "prompt_words"]).to_pylist() == [
            {"exchange_id": "e1", "prompt_words": 7}]


def test_installed_scorers_schemes_and_processors_are_found(install: Install) -> None:
    install({_registry.SCORERS_GROUP: {"robust-again": "dg_plugin_example:RobustAgain"},
             _registry.WATERMARK_SCHEMES_GROUP: {"wide-greenlist": "dg_plugin_example:WideGreenList"},
             _registry.LOGITS_PROCESSORS_GROUP: {"temperature": "dg_plugin_example:temperature"}})
    from distillguard.detect import registered_scorers
    from distillguard.lab.processors import available, build_processors
    from distillguard.watermark.base import load_scheme

    assert "robust-again" in [cls.name for cls in registered_scorers()]
    scheme = load_scheme("wide-greenlist", {"key": 3, "version": "w1"})
    assert (scheme.name, scheme.gamma, scheme.version) == ("wide-greenlist", 0.5, "w1")  # type: ignore[attr-defined]
    assert {"temperature", "watermark", "repetition_penalty"} <= set(available())
    assert type(build_processors([{"name": "temperature", "value": 2.0}])[0]).__name__ == "TemperatureLogitsWarper"


def test_a_plugin_that_cannot_be_loaded_is_named(install: Install) -> None:
    install({_registry.SIGNALS_GROUP: {"broken": "dg_no_such_module:Thing"}})
    with pytest.raises(PluginError, match=r"'broken' of distillguard.signals .*dg-plugin-example.* cannot be loaded"):
        registered_enrichers()


def test_a_plugin_taking_a_built_in_name_is_refused(install: Install) -> None:
    install({_registry.SIGNALS_GROUP: {"timing": "dg_plugin_example:CopyOfTiming"}})
    with pytest.raises(PluginError, match="takes the name 'timing'"):
        registered_enrichers()


def test_a_plugin_of_the_wrong_kind_is_refused(install: Install) -> None:
    install({_registry.SIGNALS_GROUP: {"temperature": "dg_plugin_example:temperature"}})
    with pytest.raises(PluginError, match=r"not a subclass of distillguard\.signals\.base\.Enricher"):
        registered_enrichers()


def test_once_the_plugin_is_gone_the_signals_table_is_the_built_ins_again() -> None:
    assert "prompt_words" not in signals_schema().names
    assert "prompt_words" not in [e.name for e in registered_enrichers()]
