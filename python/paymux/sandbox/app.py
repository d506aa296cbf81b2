"""`build_app`: the sandbox as an aiohttp Application, one mount per PSP instance plus /_sandbox."""

from __future__ import annotations

from aiohttp import web

from paymux.sandbox.admin import Admin
from paymux.sandbox.adyen_api import AdyenApi
from paymux.sandbox.checkout_api import CheckoutApi
from paymux.sandbox.engine import Sandbox
from paymux.sandbox.scenario import Scenario, compile_scenario, default_scenario
from paymux.sandbox.stripe_api import StripeApi

DIALECTS = {"stripe": StripeApi, "adyen": AdyenApi, "checkout": CheckoutApi}

#: The running Sandbox (state, ledger) of an app built here: `app[SANDBOX_KEY]`.
SANDBOX_KEY = web.AppKey("paymux_sandbox", Sandbox)


def build_app(scenario: Scenario | None = None, seed: int = 0) -> web.Application:
    """A sandbox app. `seed` wins over the scenario's own seed unless it is left at 0."""
    scenario = scenario if scenario is not None else default_scenario()
    if not scenario.psps:
        scenario.psps = default_scenario().psps
    if seed == 0 and scenario.seed is not None:
        seed = scenario.seed
    compiled = compile_scenario(scenario)
    sandbox = Sandbox(scenario, seed)
    app = web.Application(client_max_size=1024**2)
    app[SANDBOX_KEY] = sandbox
    dialects = {}
    for name, psp in compiled.psps.items():
        dialect = DIALECTS[psp.wire](sandbox, name)
        dialects[name] = dialect
        app.router.add_routes(dialect.routes(psp.mount))
    app.router.add_routes(Admin(sandbox, dialects).routes())
    return app
