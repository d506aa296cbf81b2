"""paymux: a payment orchestration gateway."""

__version__ = "0.1.0"
