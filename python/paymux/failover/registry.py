"""Failover policy discovery: the policy named in config, from the ``paymux.policies`` entry points.

The built-in ``default`` registers the same way third-party policies do. A policy that is missing,
fails to import, or is not a policy is reported and the built-in default is used instead: a broken
plugin never takes payments down.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
from dataclasses import dataclass

from paymux.failover.policy import DefaultPolicy, FailoverPolicy
from paymux.observability.logs import log

GROUP = "paymux.policies"


@dataclass(frozen=True, slots=True)
class PolicyLoadError:
    name: str
    value: str | None  # "module:Class" as declared, None when no entry point has that name
    error: str

    def __str__(self) -> str:
        where = f" ({self.value})" if self.value else ""
        return f"failover policy {self.name!r}{where} failed to load: {self.error}"


def _instantiate(obj: object) -> FailoverPolicy:
    policy = obj() if inspect.isclass(obj) else obj
    decide = getattr(policy, "decide", None)
    if decide is None or not inspect.iscoroutinefunction(decide):
        raise TypeError("a failover policy needs an `async def decide(...)` method")
    return policy  # type: ignore[return-value]


def load_policy(name: str = "default") -> tuple[FailoverPolicy, list[PolicyLoadError]]:
    """The policy registered as ``name`` (an instance), and what went wrong on the way."""
    errors: list[PolicyLoadError] = []
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name != name:
            continue
        try:
            return _instantiate(ep.load()), errors
        except Exception as exc:  # noqa: BLE001 - any plugin failure falls back to the default
            errors.append(PolicyLoadError(name, ep.value, f"{type(exc).__name__}: {exc}"))
            break
    else:
        if name != "default":
            errors.append(PolicyLoadError(name, None, "no entry point in group paymux.policies"))
    for error in errors:
        log("failover_policy_load_failed", logging.ERROR, policy=name, error=str(error))
    return DefaultPolicy(), errors
