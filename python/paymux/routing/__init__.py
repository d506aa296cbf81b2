"""Smart routing: rules, capability filter, success-rate based ordering with fees, breakers."""

from paymux.routing.config import (
    DynamicConfig,
    FeeRule,
    HealthConfig,
    MerchantRouting,
    RoutingConfig,
    RoutingConfigError,
)
from paymux.routing.engine import (
    CandidateEstimate,
    PaymentAttributes,
    RoutePlan,
    RoutingEngine,
    outcome_for,
)

__all__ = [
    "CandidateEstimate",
    "DynamicConfig",
    "FeeRule",
    "HealthConfig",
    "MerchantRouting",
    "PaymentAttributes",
    "RoutePlan",
    "RoutingConfig",
    "RoutingConfigError",
    "RoutingEngine",
    "outcome_for",
]
