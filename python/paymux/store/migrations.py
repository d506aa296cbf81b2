"""Schema migrations, applied in order once each. Never edit a released migration: add one."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE merchants (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                created_at REAL NOT NULL
            )""",
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                merchant_id TEXT NOT NULL REFERENCES merchants(id),
                key_hash TEXT NOT NULL UNIQUE,
                prefix TEXT NOT NULL,
                mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
                created_at REAL NOT NULL,
                revoked_at REAL
            )""",
            """CREATE TABLE tokens (
                id TEXT PRIMARY KEY,
                merchant_id TEXT NOT NULL REFERENCES merchants(id),
                fingerprint TEXT NOT NULL,
                ciphertext BLOB NOT NULL,
                key_version INTEGER NOT NULL,
                brand TEXT NOT NULL,
                bin TEXT NOT NULL,
                last4 TEXT NOT NULL,
                exp_month INTEGER NOT NULL,
                exp_year INTEGER NOT NULL,
                created_at REAL NOT NULL,
                deleted_at REAL
            )""",
            "CREATE INDEX tokens_fingerprint ON tokens (merchant_id, fingerprint)",
            """CREATE TABLE payments (
                id TEXT PRIMARY KEY,
                merchant_id TEXT NOT NULL REFERENCES merchants(id),
                status TEXT NOT NULL,
                amount INTEGER NOT NULL CHECK (amount > 0),
                currency TEXT NOT NULL,
                capture_method TEXT NOT NULL,
                amount_capturable INTEGER NOT NULL DEFAULT 0,
                amount_received INTEGER NOT NULL DEFAULT 0,
                amount_refunded INTEGER NOT NULL DEFAULT 0,
                connector TEXT,
                connector_reference TEXT,
                token_id TEXT,
                card_brand TEXT,
                card_bin TEXT,
                card_last4 TEXT,
                card_exp_month INTEGER,
                card_exp_year INTEGER,
                billing_country TEXT,
                reference TEXT,
                metadata TEXT,
                error TEXT,
                routing TEXT,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                CHECK (amount_received <= amount),
                CHECK (amount_refunded <= amount_received)
            )""",
            "CREATE INDEX payments_merchant ON payments (merchant_id, id)",
            "CREATE INDEX payments_created ON payments (created_at)",
            """CREATE TABLE attempts (
                id TEXT PRIMARY KEY,
                payment_id TEXT NOT NULL REFERENCES payments(id),
                merchant_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                connector TEXT NOT NULL,
                reference TEXT NOT NULL UNIQUE,
                status TEXT NOT NULL,
                amount INTEGER NOT NULL,
                currency TEXT NOT NULL,
                connector_reference TEXT,
                raw_code TEXT,
                raw_message TEXT,
                normalized_code TEXT,
                decline_class TEXT,
                advice_code TEXT,
                latency_ms REAL,
                ambiguous INTEGER NOT NULL DEFAULT 0,
                next_action TEXT,
                fee INTEGER,
                card_brand TEXT,
                card_bin TEXT,
                billing_country TEXT,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                UNIQUE (payment_id, seq)
            )""",
            "CREATE INDEX attempts_created ON attempts (created_at)",
            "CREATE INDEX attempts_connector ON attempts (connector, created_at)",
            "CREATE INDEX attempts_unfinished ON attempts (status) WHERE status = 'started'",
            """CREATE TABLE refunds (
                id TEXT PRIMARY KEY,
                payment_id TEXT NOT NULL REFERENCES payments(id),
                merchant_id TEXT NOT NULL,
                amount INTEGER NOT NULL CHECK (amount > 0),
                currency TEXT NOT NULL,
                status TEXT NOT NULL,
                connector TEXT NOT NULL,
                reference TEXT NOT NULL UNIQUE,
                connector_reference TEXT,
                raw_code TEXT,
                reason TEXT,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            "CREATE INDEX refunds_payment ON refunds (payment_id)",
            """CREATE TABLE idempotency (
                merchant_id TEXT NOT NULL,
                key TEXT NOT NULL,
                request_hash TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at REAL NOT NULL,
                response_status INTEGER,
                response_body BLOB,
                payment_id TEXT,
                PRIMARY KEY (merchant_id, key)
            )""",
            """CREATE TABLE events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                payment_id TEXT NOT NULL,
                merchant_id TEXT NOT NULL,
                type TEXT NOT NULL,
                from_status TEXT,
                to_status TEXT,
                attempt_id TEXT,
                data TEXT,
                created_at REAL NOT NULL
            )""",
            "CREATE INDEX events_payment ON events (payment_id, id)",
        ],
    ),
    (
        2,
        [
            # Analytics (paymux.analytics): one covering index, so a report reads index pages only
            # and never the wide attempt rows (ids, messages, references). Connector first: each
            # report scans one contiguous time range per connector, and grouping by connector
            # needs no sort.
            """CREATE INDEX attempts_analytics ON attempts (
                connector, created_at, status, seq, currency, billing_country, card_brand,
                card_bin, merchant_id, latency_ms, fee, normalized_code, decline_class, raw_code,
                payment_id, amount
            )""",
            # The payment's outcome for a first attempt, in one index seek.
            "CREATE INDEX payments_outcome ON payments (id, status, amount)",
        ],
    ),
    (
        3,
        [
            # Every routing configuration the gateway ever ran, JSON as compiled; one row active.
            # Workers poll the active version id and swap their engine when it changes.
            """CREATE TABLE routing_versions (
                version INTEGER PRIMARY KEY AUTOINCREMENT,
                config TEXT NOT NULL,
                created_at REAL NOT NULL,
                source TEXT NOT NULL,
                active INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX routing_versions_active ON routing_versions (active) WHERE active = 1",
            # The reconciler's work list: attempts whose PSP-side state is not known for sure.
            # kind 'pending': the payment waits on this attempt; 'late_auth': the payment moved on
            # to another PSP and this attempt must never end up holding funds.
            """CREATE TABLE reconcile_watch (
                attempt_id TEXT PRIMARY KEY REFERENCES attempts(id),
                payment_id TEXT NOT NULL,
                merchant_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                state TEXT NOT NULL DEFAULT 'open',
                checks INTEGER NOT NULL DEFAULT 0,
                next_check_at REAL NOT NULL,
                until REAL NOT NULL,
                note TEXT,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            "CREATE INDEX reconcile_watch_due ON reconcile_watch (next_check_at) WHERE state = 'open'",
        ],
    ),
    (
        4,
        [
            # Captures and voids, each persisted before its PSP call with its own reference (the
            # PSP's idempotency key). 'pending' until the PSP's answer is known; a crash or an
            # ambiguous answer leaves it pending for the reconciler to sync by that reference.
            """CREATE TABLE operations (
                id TEXT PRIMARY KEY,
                payment_id TEXT NOT NULL REFERENCES payments(id),
                merchant_id TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('capture', 'void')),
                amount INTEGER NOT NULL CHECK (amount > 0),
                currency TEXT NOT NULL,
                connector TEXT NOT NULL,
                reference TEXT NOT NULL UNIQUE,
                status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
                connector_reference TEXT,
                raw_code TEXT,
                normalized_code TEXT,
                ambiguous INTEGER NOT NULL DEFAULT 0,
                checks INTEGER NOT NULL DEFAULT 0,
                front TEXT NOT NULL DEFAULT 'v1',
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            "CREATE INDEX operations_payment ON operations (payment_id)",
            "CREATE INDEX operations_pending ON operations (status) WHERE status = 'pending'",
            "CREATE INDEX refunds_pending ON refunds (status) WHERE status = 'pending'",
            # The operation (capture, void or refund id) an Idempotency-Key created, so the
            # transaction that settles it completes the key too, whoever settles it.
            "ALTER TABLE idempotency ADD COLUMN operation_id TEXT",
            "CREATE INDEX idempotency_bound ON idempotency (payment_id, operation_id)",
            "ALTER TABLE events ADD COLUMN operation_id TEXT",
            # The API a payment, refund or operation came through (v1 or a drop-in front), so
            # whoever settles it renders its Idempotency-Key's answer in that API's shape.
            "ALTER TABLE payments ADD COLUMN front TEXT NOT NULL DEFAULT 'v1'",
            "ALTER TABLE refunds ADD COLUMN front TEXT NOT NULL DEFAULT 'v1'",
            "ALTER TABLE payments ADD COLUMN description TEXT",
        ],
    ),
]
