"""Routing administration: versioned hot reload, rollback and a dry-run `explain`, plus the task
that keeps every worker process on the active version.

- ``GET  /admin/routing``            the active version and its configuration
- ``PUT  /admin/routing``            a new `[routing]` table as JSON: compiled first, then stored
                                     and swapped in; a config that does not compile is a 400 and
                                     the old one keeps serving
- ``GET  /admin/routing/versions``   every version ever stored
- ``POST /admin/routing/rollback``   ``{"version": N}``: make an older version the active one
- ``POST /admin/routing/explain``    which rule, which candidates with their estimates, which
                                     exclusions and which order a payment would get; sends nothing

Versions live in the store (``routing_versions``); each worker polls the active version id and
recompiles when it changes, so a PUT to one worker reaches all of them within a poll interval.
The config file (``--config``) is a source of versions too: it is re-read on SIGHUP and when its
mtime changes; a file that does not compile is logged and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import tomllib
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from paymux import _core
from paymux.api.auth import authenticate_admin
from paymux.api.errors import ApiError, invalid
from paymux.api.http import decode, json_response
from paymux.config import ReconcilerConfig
from paymux.domain.money import is_known_currency
from paymux.domain.records import RoutingVersion
from paymux.observability.logs import log
from paymux.routing.engine import PaymentAttributes
from paymux.routing.router import Router, RoutingCompileError
from paymux.store.base import Store

ROUTING_ADMIN: web.AppKey[RoutingAdmin] = web.AppKey("routing_admin")


class ExplainCard(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    number: str | None = None  # a test card number: brand and BIN are read from it, then dropped
    brand: str | None = None
    bin: str | None = None
    card_type: str | None = None
    exp_month: int | None = None  # accepted (and ignored) so a payment body can be pasted
    exp_year: int | None = None
    cvc: str | None = None


class ExplainPaymentMethod(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    card: ExplainCard | None = None
    token: str | None = None


class ExplainBilling(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    country: str | None = None


class ExplainRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: int
    currency: str
    merchant_id: str | None = None
    card: ExplainCard | None = None
    payment_method: ExplainPaymentMethod | None = None
    billing: ExplainBilling | None = None
    billing_country: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    capture_method: str = "automatic"
    payment_id: str = "pay_explain"  # split routing hashes it: pass one to see its split


class RollbackRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: int


def _version_view(v: RoutingVersion, with_config: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": v.version,
        "source": v.source,
        "active": v.active,
        "created_at": v.created_at,
    }
    if with_config:
        out["config"] = v.config
    return out


def _compile_error(exc: RoutingCompileError) -> ApiError:
    param = f"routing.{exc.field}" if exc.field else "routing"
    return invalid("routing_config_invalid", str(exc), param)


class RoutingAdmin:
    def __init__(
        self,
        router: Router,
        store: Store,
        admin_api_key: str,
        file_config: dict[str, Any],
        config_path: str | None,
        settings: ReconcilerConfig,
    ) -> None:
        self.router = router
        self.store = store
        self.admin_api_key = admin_api_key
        self.file_config = file_config
        self.config_path = config_path
        self.settings = settings
        self._lock = asyncio.Lock()  # one change at a time in this process
        self._tasks: list[asyncio.Task[None]] = []
        self._mtime: float | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.config_path is not None:
            try:
                self._mtime = os.stat(self.config_path).st_mtime
            except OSError:
                self._mtime = None
        await self.adopt_file_config(self.file_config, "config")
        await self.sync_active()
        self._tasks.append(asyncio.create_task(self._poll_versions(), name="routing-versions"))
        if self.config_path is not None:
            self._tasks.append(asyncio.create_task(self._poll_file(), name="routing-config-file"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()

    # -- versions ------------------------------------------------------------------------------

    async def adopt_file_config(self, raw: dict[str, Any], source: str) -> RoutingVersion | None:
        """Store the file's routing config as a new active version if it changed since the file
        was last read (an admin PUT made since then stays active while the file is unchanged)."""
        async with self._lock:
            try:
                self.router.compile(raw)
            except RoutingCompileError as exc:
                log("routing_config_rejected", logging.ERROR, source=source, error=str(exc))
                return None
            versions = await self.store.routing_versions()
            from_file = [v for v in versions if v.source == "config"]
            if (
                from_file
                and _canonical(from_file[-1].config) == _canonical(raw)
                and any(v.active for v in versions)
            ):
                return None
            version = await self.store.add_routing_version(
                raw, "config", time.time(), unless_active_equals=True
            )
            log("routing_version_stored", version=version.version, source=source)
            return version

    async def sync_active(self) -> None:
        """Make this worker run the active version (the poll loop's step)."""
        active_id = await self.store.active_routing_version_id()
        if active_id is None or active_id == self.router.version:
            return
        version = await self.store.get_routing_version(active_id)
        if version is None:
            return
        try:
            self.router.reload(version.config, version.version)
        except RoutingCompileError as exc:
            # Stored versions compiled when stored; this happens when connectors changed since.
            log("routing_version_unusable", logging.ERROR, version=active_id, error=str(exc))
            self.router.swap(self.router.engine, self.router.config, active_id)  # don't retry
            return
        log("routing_reloaded", version=version.version, source=version.source)

    async def _poll_versions(self) -> None:
        while True:
            await asyncio.sleep(self.settings.routing_poll_s)
            try:
                await self.sync_active()
            except Exception as exc:  # noqa: BLE001 - keep polling whatever happened
                log("routing_poll_failed", logging.ERROR, error_type=type(exc).__name__)

    async def reload_file(self, why: str = "sighup") -> RoutingVersion | None:
        """Re-read the config file's `[routing]`; a file that does not parse or compile is
        logged and the running configuration stays."""
        if self.config_path is None:
            return None
        try:
            doc = tomllib.loads(Path(self.config_path).read_text())
            raw = doc.get("routing", {})
            if not isinstance(raw, dict):
                raise TypeError("[routing] must be a table")
        except (OSError, ValueError, TypeError) as exc:
            log("routing_config_rejected", logging.ERROR, source=why, error=str(exc)[:500])
            return None
        version = await self.adopt_file_config(raw, why)
        await self.sync_active()
        return version

    def trigger_reload(self) -> None:
        """For signal handlers: schedule a file reload."""

        async def reload() -> None:
            try:
                await self.reload_file("sighup")
            except Exception as exc:  # noqa: BLE001 - a failed reload keeps the running config
                log("routing_reload_failed", logging.ERROR, error_type=type(exc).__name__)

        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(reload()))

    async def _poll_file(self) -> None:
        assert self.config_path is not None
        while True:
            await asyncio.sleep(self.settings.config_poll_s)
            try:
                mtime = os.stat(self.config_path).st_mtime
            except OSError:
                continue
            if mtime != self._mtime:
                self._mtime = mtime
                try:
                    await self.reload_file("file_changed")
                except Exception as exc:  # noqa: BLE001
                    log("routing_poll_failed", logging.ERROR, error_type=type(exc).__name__)

    # -- HTTP ----------------------------------------------------------------------------------

    def authorize(self, request: web.Request) -> None:
        authenticate_admin(request, self.admin_api_key)

    async def get_routing(self, request: web.Request) -> web.StreamResponse:
        self.authorize(request)
        active = await self.store.active_routing_version()
        if active is None:
            return json_response(200, {"version": None, "config": self.router.config})
        return json_response(200, {**_version_view(active), "serving": self.router.version})

    async def put_routing(self, request: web.Request) -> web.StreamResponse:
        self.authorize(request)
        raw = await decode(request, dict[str, Any])
        async with self._lock:
            try:
                engine = self.router.compile(raw)
            except RoutingCompileError as exc:
                log("routing_config_rejected", logging.WARNING, source="admin", error=str(exc))
                raise _compile_error(exc) from None
            version = await self.store.add_routing_version(raw, "admin", time.time())
            self.router.swap(engine, raw, version.version)
        log("routing_reloaded", version=version.version, source="admin")
        return json_response(200, _version_view(version))

    async def list_versions(self, request: web.Request) -> web.StreamResponse:
        self.authorize(request)
        versions = await self.store.routing_versions()
        active = next((v.version for v in versions if v.active), None)
        return json_response(
            200,
            {
                "object": "list",
                "active": active,
                "data": [_version_view(v) for v in reversed(versions)],
            },
        )

    async def rollback(self, request: web.Request) -> web.StreamResponse:
        self.authorize(request)
        body = await decode(request, RollbackRequest)
        async with self._lock:
            target = await self.store.get_routing_version(body.version)
            if target is None:
                raise ApiError(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    f"No routing version {body.version}",
                    "version",
                )
            try:
                engine = self.router.compile(target.config)
            except RoutingCompileError as exc:
                raise _compile_error(exc) from None
            activated = await self.store.activate_routing_version(body.version)
            assert activated is not None
            self.router.swap(engine, target.config, activated.version)
        log("routing_reloaded", version=activated.version, source="rollback")
        return json_response(200, _version_view(activated))

    async def explain(self, request: web.Request) -> web.StreamResponse:
        self.authorize(request)
        body: ExplainRequest = await decode(request, ExplainRequest)
        if body.amount <= 0:
            raise invalid(
                "parameter_invalid", "amount must be a positive integer (minor units)", "amount"
            )
        currency = body.currency.upper()
        if not is_known_currency(currency):
            raise invalid("invalid_currency", f"Unknown currency {body.currency}", "currency")
        card = body.card
        param = "card"
        if card is None and body.payment_method is not None:
            card = body.payment_method.card
            param = "payment_method.card"
        brand = bin_ = card_type = None
        if card is not None:
            brand, bin_, card_type = card.brand, card.bin, card.card_type
            if card.number is not None:
                try:
                    info = _core.inspect_card(card.number)
                except ValueError as exc:
                    code = getattr(exc, "code", "invalid_number")
                    raise ApiError(
                        400,
                        "card_error",
                        "invalid_number" if code == "luhn_failed" else code,
                        "The card number is not a valid card number.",
                        f"{param}.number",
                    ) from None
                brand, bin_ = info.brand, info.bin
                card.number = None  # only brand and BIN are kept; the number is never logged
        country = body.billing_country or (body.billing.country if body.billing else None)
        attrs = PaymentAttributes(
            payment_id=body.payment_id,
            amount=body.amount,
            currency=currency,
            brand=brand,
            card_type=card_type,
            bin=bin_,
            country=country.upper() if country else None,
            merchant_id=body.merchant_id,
            metadata=body.metadata,
        )
        result = self.router.explain(attrs)
        result["attributes"] = {
            "amount": attrs.amount,
            "currency": attrs.currency,
            "brand": brand,
            "bin": bin_,
            "card_type": card_type,
            "country": attrs.country,
            "merchant_id": attrs.merchant_id,
            "metadata": attrs.metadata,
            "capture_method": body.capture_method,
        }
        return json_response(200, result)


def _canonical(config: dict[str, Any]) -> bytes:
    return msgspec.json.encode(config, order="sorted")


def add_routing_admin_routes(app: web.Application, admin: RoutingAdmin) -> None:
    app[ROUTING_ADMIN] = admin
    app.router.add_get("/admin/routing", admin.get_routing)
    app.router.add_put("/admin/routing", admin.put_routing)
    app.router.add_get("/admin/routing/versions", admin.list_versions)
    app.router.add_post("/admin/routing/rollback", admin.rollback)
    app.router.add_post("/admin/routing/explain", admin.explain)
