"""paymux sandbox: a deterministic simulator of the Stripe, Adyen and Checkout.com APIs.

`build_app(scenario, seed)` gives the aiohttp application; `load_scenario(path)` reads a TOML
scenario. See docs/sandbox.md.
"""

from paymux.sandbox.app import SANDBOX_KEY, build_app
from paymux.sandbox.scenario import DEFAULT_CREDENTIALS, Scenario, load_scenario

__all__ = ["DEFAULT_CREDENTIALS", "SANDBOX_KEY", "Scenario", "build_app", "load_scenario"]
