"""The Stripe-compatible front (``/compat/stripe/v1/...``): see handlers.py and docs/dropin.md."""

from paymux.api.compat_stripe.handlers import add_stripe_routes

__all__ = ["add_stripe_routes"]
