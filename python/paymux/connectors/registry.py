"""Connector discovery: every connector, built-in or third-party, comes from the
``paymux.connectors`` entry-point group. One registration path; a plugin that fails to import is
reported (``LoadError``) and logged, and never takes the others down.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
from dataclasses import dataclass

from paymux.connectors.base import Connector, ConnectorConfig

GROUP = "paymux.connectors"

log = logging.getLogger("paymux.connectors.registry")


@dataclass(frozen=True, slots=True)
class LoadError:
    """One entry point that could not be loaded."""

    name: str  # the entry point's name (the connector kind it claims)
    value: str  # "module:Class" as declared
    error: str  # "ExceptionType: message"
    distribution: str | None = None

    def __str__(self) -> str:
        origin = f" from {self.distribution}" if self.distribution else ""
        return f"connector plugin {self.name!r} ({self.value}){origin} failed to load: {self.error}"


class UnknownConnectorError(LookupError):
    """No connector plugin is registered (or loadable) for a configured ``kind``."""


def load_connectors() -> tuple[dict[str, type[Connector]], list[LoadError]]:
    """All loadable connector classes by kind, and the entry points that failed to load."""
    connectors: dict[str, type[Connector]] = {}
    errors: list[LoadError] = []
    seen: set[tuple[str, str]] = set()
    for ep in importlib.metadata.entry_points(group=GROUP):
        if (ep.name, ep.value) in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add((ep.name, ep.value))
        dist_obj = getattr(ep, "dist", None)
        dist = dist_obj.name if dist_obj is not None else None
        try:
            obj = ep.load()
            if not (inspect.isclass(obj) and issubclass(obj, Connector)):
                raise TypeError(f"{ep.value} is not a subclass of paymux.connectors.base.Connector")
            if inspect.isabstract(obj):
                missing = ", ".join(sorted(obj.__abstractmethods__))
                raise TypeError(f"{ep.value} does not implement: {missing}")
            kind = getattr(obj, "kind", None)
            if kind != ep.name:
                raise TypeError(
                    f"{ep.value}.kind is {kind!r}, the entry point is named {ep.name!r}"
                )
            if kind in connectors and connectors[kind] is not obj:
                raise TypeError(
                    f"kind {kind!r} is already provided by "
                    f"{connectors[kind].__module__}.{connectors[kind].__qualname__}"
                )
        except Exception as exc:  # noqa: BLE001  (a broken plugin is reported, never fatal)
            error = LoadError(ep.name, ep.value, f"{type(exc).__name__}: {exc}", dist)
            log.warning("%s", error)
            errors.append(error)
            continue
        connectors[kind] = obj
    return connectors, errors


def create_connector(config: ConnectorConfig) -> Connector:
    """A connector instance for ``config.kind`` (call ``await connector.start()`` before use)."""
    connectors, errors = load_connectors()
    cls = connectors.get(config.kind)
    if cls is None:
        why = next((str(e) for e in errors if e.name == config.kind), None)
        known = ", ".join(sorted(connectors)) or "none"
        raise UnknownConnectorError(
            why or f"no connector plugin of kind {config.kind!r} (installed: {known})"
        )
    return cls(config)
