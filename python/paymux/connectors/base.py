"""The connector interface: one typed async contract every PSP adapter implements.

A connector is a stateless adapter. It turns paymux's normalized requests into one PSP's wire
format and that PSP's answers (or silence) into a normalized ``ConnectorResult``. Flow, retries and
persistence belong to the gateway. A connector never raises for anything a PSP can send or fail to
send: garbage, HTML, truncated JSON, 5xx, timeouts and resets become a ``technical`` result with the
raw detail kept.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec
import orjson

from paymux.domain.outcomes import AttemptStatus, DeclineClass


class CardDetails:
    """A revealed card on its way out to a PSP. Lives in memory for one request only.

    Not a msgspec Struct on purpose: its repr, str and any error built from it show the masked
    number only, never the PAN or CVC.
    """

    __slots__ = ("cvc", "exp_month", "exp_year", "holder_name", "number")

    def __init__(
        self,
        number: str,
        exp_month: int,
        exp_year: int,
        cvc: str | None = None,
        holder_name: str | None = None,
    ) -> None:
        self.number = number
        self.exp_month = exp_month
        self.exp_year = exp_year
        self.cvc = cvc
        self.holder_name = holder_name

    def masked(self) -> str:
        n = self.number
        return n[:6] + "*" * max(len(n) - 10, 0) + n[-4:] if len(n) >= 10 else "*" * len(n)

    def __repr__(self) -> str:
        return f"CardDetails({self.masked()}, exp={self.exp_month:02d}/{self.exp_year})"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # never pickle a PAN into a cache or a queue
        raise TypeError("CardDetails cannot be pickled")


class Capabilities(msgspec.Struct, frozen=True):
    """What a connector supports; the router filters candidates on it before ordering them."""

    payment_methods: frozenset[str] = frozenset({"card"})
    brands: frozenset[str] | None = None  # None: any brand
    currencies: frozenset[str] | None = None  # None: any ISO 4217 currency
    countries: frozenset[str] | None = None  # issuer/billing countries; None: any
    partial_capture: bool = True
    multiple_refunds: bool = True
    three_ds: bool = False

    def supports(
        self, *, method: str, brand: str | None, currency: str, country: str | None
    ) -> bool:
        if method not in self.payment_methods:
            return False
        if self.currencies is not None and currency not in self.currencies:
            return False
        if brand is not None and self.brands is not None and brand not in self.brands:
            return False
        return country is None or self.countries is None or country in self.countries


class ConnectorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One configured PSP account. Secrets come from config or environment, never from code."""

    name: str  # the instance name used in routing ("stripe_eu")
    kind: str  # the connector plugin ("stripe", "adyen", "checkout", or a third party's)
    base_url: str  # e.g. "https://api.stripe.com" or the sandbox's "http://127.0.0.1:8090/stripe"
    api_key: str = msgspec.field(default="")
    merchant_account: str | None = None  # Adyen merchantAccount, Checkout.com processing channel
    webhook_secret: str | None = None
    timeout_s: float = 8.0  # total per PSP call
    connect_timeout_s: float = 2.0
    max_connections: int = 100
    extra: dict[str, str] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"ConnectorConfig(name={self.name!r}, kind={self.kind!r}, base_url={self.base_url!r})"
        )


class AuthorizeRequest(msgspec.Struct, frozen=True, kw_only=True):
    reference: str  # paymux's per-attempt reference: the PSP's idempotency key and merchant ref
    payment_id: str
    amount: int  # minor units
    currency: str
    card: CardDetails
    capture: bool  # True: automatic capture; False: authorize only
    merchant_reference: str | None = None  # the merchant's order id
    billing_country: str | None = None
    description: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class CaptureRequest(msgspec.Struct, frozen=True, kw_only=True):
    reference: str  # idempotency key of this capture
    connector_reference: str  # the PSP's id of the authorization
    amount: int
    currency: str


class VoidRequest(msgspec.Struct, frozen=True, kw_only=True):
    reference: str
    connector_reference: str
    amount: int  # the authorized amount (Adyen and Checkout.com want it on some calls)
    currency: str


class RefundRequest(msgspec.Struct, frozen=True, kw_only=True):
    reference: str
    connector_reference: str
    amount: int
    currency: str


class SyncRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Find an attempt by paymux's own reference, for an answer that never arrived."""

    reference: str  # the attempt's reference sent on authorize
    connector_reference: str | None = None  # if we did learn the PSP's id, look it up directly
    amount: int | None = None
    currency: str | None = None
    # The authorize request whose answer was lost, while the caller still holds it (same payment
    # request, CVC still in memory). Only connectors whose PSP has no lookup by reference use it:
    # Adyen re-sends the identical /payments call with the same Idempotency-Key and gets the
    # original answer replayed. Never stored.
    original: AuthorizeRequest | None = None


class OperationSyncRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Find a capture, void or refund by paymux's own operation reference, for an answer that
    never arrived (timeout, reset, 5xx, garbage, or a gateway that died mid-call)."""

    operation: str  # "capture" | "void" | "refund"
    reference: str  # the operation's reference, sent as its idempotency key (and PSP reference)
    connector_reference: str  # the PSP's id of the payment the operation belongs to
    amount: int  # the operation's amount
    currency: str
    operation_reference: str | None = None  # the PSP's id of the operation, if we learned it


class ConnectorResult(msgspec.Struct, kw_only=True):
    """The normalized outcome of one PSP call."""

    status: AttemptStatus
    connector_reference: str | None = None  # the PSP's id (pi_..., pspReference, pay_...)
    amount: int | None = None  # amount the PSP says it authorized/captured/refunded
    raw_code: str | None = (
        None  # the PSP's own code, as sent (decline_code, refusalReasonCode, ...)
    )
    raw_message: str | None = None
    normalized_code: str | None = None  # paymux's code (e.g. "insufficient_funds")
    decline_class: DeclineClass | None = None
    advice_code: str | None = None  # network advice (e.g. Mastercard 03 "do not try again")
    http_status: int | None = None
    latency_ms: float = 0.0
    # True when the request may have reached the PSP and we do not know what it did (timeout after
    # sending, reset, 5xx): the gateway must sync before going anywhere else.
    ambiguous: bool = False
    detail: str | None = None  # scrubbed raw detail (truncated body, exception text)


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True):
    connector_reference: str
    reference: str | None  # our attempt reference, when the PSP echoes it
    event_type: str  # the PSP's own event name
    status: AttemptStatus
    amount: int | None = None
    raw_code: str | None = None


class WebhookError(ValueError):
    """A webhook that fails authentication or cannot be parsed."""


class Connector(abc.ABC):
    """One PSP adapter. Subclasses declare ``kind`` and ``capabilities`` and implement the calls.

    Instances own one pooled aiohttp ClientSession (created in ``start``, closed in ``close``).
    """

    kind: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    async def start(self) -> None:
        """Open the pooled HTTP session. Called once before the first request."""

    async def close(self) -> None:
        """Close the pooled HTTP session."""

    @abc.abstractmethod
    async def authorize(self, request: AuthorizeRequest) -> ConnectorResult: ...

    @abc.abstractmethod
    async def capture(self, request: CaptureRequest) -> ConnectorResult: ...

    @abc.abstractmethod
    async def void(self, request: VoidRequest) -> ConnectorResult: ...

    @abc.abstractmethod
    async def refund(self, request: RefundRequest) -> ConnectorResult: ...

    @abc.abstractmethod
    async def sync(self, request: SyncRequest) -> ConnectorResult:
        """The attempt's current status at the PSP, or NOT_FOUND if it never got there."""

    async def sync_operation(self, request: OperationSyncRequest) -> ConnectorResult:
        """The PSP's word on one capture, void or refund, found by its reference:

        - CAPTURED / VOIDED / REFUNDED: the PSP applied it (or accepted it for settlement);
        - DECLINED: the PSP refused it, so nothing changed there;
        - NOT_FOUND: the PSP has no such operation, so nothing happened;
        - PENDING, or FAILED with ``ambiguous``: it cannot tell yet; ask again later.

        A connector without a way to look operations up keeps the default: always "cannot
        tell", so the operation stays in flight for the reconciler and a person, never failed.
        """
        return ConnectorResult(
            status=AttemptStatus.FAILED,
            normalized_code="sync_unsupported",
            decline_class=DeclineClass.TECHNICAL,
            ambiguous=True,
            detail=f"{self.kind} cannot look up a {request.operation} by reference",
        )

    @abc.abstractmethod
    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]: ...

    @abc.abstractmethod
    def map_error(self, raw_code: str | None) -> tuple[str, DeclineClass]:
        """The normalized code and decline class for one of this PSP's raw codes."""

    # -- the transparent pass-through ---------------------------------------------------------

    #: ``"json"`` or ``"form"``: how this PSP's request bodies are encoded.
    passthrough_encoding: ClassVar[str] = "json"
    #: The card fields of this PSP's requests (empty: tokens are never revealed).
    card_fields: ClassVar[tuple[CardFields, ...]] = ()

    def merchant_credential(self, headers: Mapping[str, str]) -> str | None:
        """The key the merchant's SDK sent, from where this PSP's SDKs put theirs."""
        return None

    def passthrough_headers(self) -> dict[str, str]:
        """The real credentials of this PSP account, injected into every forwarded request."""
        return {}

    def passthrough_defaults(self, method: str, path: str, body: dict[str, Any]) -> None:
        """Fill what the PSP account needs from the config into a forwarded JSON or form body
        (Adyen's merchantAccount, Checkout.com's processing channel)."""

    def parse_passthrough(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        latency_ms: float,
    ) -> ConnectorResult | None:
        """A forwarded request's answer read with this connector's own mapper, when it is an
        authorization (None for any other call: it feeds no health window)."""
        return None

    def passthrough_error(self, error: PassthroughError) -> tuple[bytes, str]:
        """``error`` in this PSP's error shape: (body, content type)."""
        body = {
            "error": {
                "type": "invalid_request_error",
                "code": error.code,
                "message": error.message,
                "param": error.param,
            }
        }
        return orjson.dumps(body), "application/json"


# -- the transparent pass-through (/proxy/{connector}/...): what each wire format says about it --


class CardFields(msgspec.Struct, frozen=True, kw_only=True):
    """Where one request shape of a PSP carries a card: the pass-through reveals a paymux token
    sent in ``number`` (and fills the expiry from the token when the request leaves it out).

    Paths are keys into the decoded JSON body (``("paymentMethod", "number")``), or one form
    field name (``("payment_method_data[card][number]",)``) when the PSP speaks forms."""

    number: tuple[str, ...]
    exp_month: tuple[str, ...]
    exp_year: tuple[str, ...]
    expiry_as_text: bool = False  # Adyen: "03" / "2030"; Stripe, Checkout.com: numbers


class PassthroughError(msgspec.Struct, frozen=True, kw_only=True):
    """An error the pass-through itself answers (unknown token, bad credentials), rendered by
    the connector in its PSP's own error shape so the merchant's SDK raises what it knows."""

    status: int
    code: str
    message: str
    param: str | None = None
