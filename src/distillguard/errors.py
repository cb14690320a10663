"""Exception tree of distillguard.

Every error the library raises on purpose derives from one root, so callers can
catch ``DistillGuardError`` at a boundary (the CLI does) and print one line::

    DistillGuardError
    ├── ConfigError      a settings file or option is invalid
    │   └── PluginError  an installed plugin cannot be loaded, is of the wrong kind or takes a taken name
    ├── SchemaError      a table does not have the columns a stage needs
    ├── InputError       a traffic directory or file is missing or unreadable
    ├── StoreError       the DuckDB store cannot be opened or written
    ├── EngineError      the chosen engine (DuckDB, Spark) is unavailable or failed
    └── UpstreamError    an upstream model server failed (gateway, lab)

Messages name the bad value and where it came from (a path, ``file:line``).
Malformed *rows* are not errors: they are quarantined (see ``ingest``).
"""

from __future__ import annotations


class DistillGuardError(Exception):
    """Root of every error distillguard raises deliberately."""


class ConfigError(DistillGuardError):
    """A settings file, option or scenario description is invalid."""


class PluginError(ConfigError):
    """A plugin (entry point) cannot be loaded, is not of its kind, or reuses a name already taken."""


class SchemaError(DistillGuardError):
    """A table lacks a column or type that a stage needs."""


class InputError(DistillGuardError):
    """An input directory or file is missing, unreadable or of unknown kind."""


class StoreError(DistillGuardError):
    """The analytical store cannot be opened, read or written."""


class EngineError(DistillGuardError):
    """A compute engine (DuckDB, PySpark) is unavailable or failed."""


class UpstreamError(DistillGuardError):
    """An upstream model server returned an error or could not be reached."""
