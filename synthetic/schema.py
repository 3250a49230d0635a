"""The tables of a world: one place that names every table and column a world writes.

Conventions (hold for every table):

* Time: ``ts`` columns are int64 **seconds since the world's start** (``manifest.start_date``
  at 00:00 Europe/Amsterdam, no DST games); ``day = ts // 86400`` (:data:`DAY`). A negative ts lies before
  the start (e.g. an account opened years ago).
* Join keys (``*_hash``) are int64 salted hashes of a raw identifier (phone number, IBAN,
  e-mail, device fingerprint), shared by all partners of one world so that equal raw values
  give equal hashes. ``null`` means the partner does not hold that key; it is never a magic
  value. Noise (stale numbers, typos, aliases) shows up as hashes that do not match.
* Local ids (``customer_id``, ``subscriber_id``, ``user_id``, ``account_id``, ...) are
  pseudonyms drawn from one shuffled pool per world; they carry no order and no meaning.
* Money is euros (float64).

Partner tables never contain a case id, a criminal-journey phase, a role or any other truth
field; those live only under ``truth/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = "1.0"

DAY = 86_400
"""Seconds in a day: ``day = ts // DAY``."""
HOUR = 3_600
"""Seconds in an hour."""

PARTNER_KINDS: tuple[str, ...] = ("bank", "telco", "marketplace")
"""Kinds of partner in a realistic world. Known-answer worlds add the kind :data:`SIGNALS_KIND`."""
SIGNALS_KIND = "signals"
"""Kind of a partner holding ready-made evidence (:data:`SIGNALS_TABLES`): known-answer and placebo partners."""
PLACEBO = "placebo"
"""Name of the placebo partner (a ``signals`` partner whose evidence is independent of fraud)."""


def partner_block(name: str) -> str:
    """A partner's feature block, read from its name: its kind for realistic partners (``bank_2`` → ``bank``),
    the name without its number for known-answer signal partners (``bank_2`` → ``bank``, ``placebo``).

    Available before any world is built, so the grid can group partners by kind from names alone.
    """
    return name.rstrip("0123456789").rstrip("_")


def partner_names(kind: str, count: int) -> list[str]:
    """Partner names of one kind: ``telco`` when there is one telco, ``telco_1..telco_n`` otherwise.

    Banks are always numbered (``bank_1..bank_n``), also when there is one.
    """
    return [kind] if count == 1 and kind != "bank" else [f"{kind}_{i + 1}" for i in range(count)]


FRAUD_TYPES: tuple[str, ...] = ("helpdesk", "purchase", "sale", "whatsapp", "invoice")
"""helpdesk = bank-helpdesk spoofing; purchase = marketplace goods never delivered;
sale = marketplace seller tricked by a fake payment link; whatsapp = "hi mum";
invoice = business pays a changed IBAN. Money mules serve all of them."""

PHASES: tuple[str, ...] = (
    "orientation",
    "preparation",
    "contact",
    "convincing",
    "money_transfer",
    "cash_out",
)
"""The criminal journey (Integrale Aanpak Online Fraude, jaarbericht 2023)."""

I64 = pa.int64()
F64 = pa.float64()
I32 = pa.int32()
STR = pa.string()
BOOL = pa.bool_()


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False


def _schema(*cols: Column) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type, nullable=c.nullable, metadata={"doc": c.doc}) for c in cols])


# --------------------------------------------------------------------------------------------
# Partner views
# --------------------------------------------------------------------------------------------
BANK_TABLES: dict[str, pa.Schema] = {
    "customers": _schema(
        Column("customer_id", I64, "local pseudonym of the customer"),
        Column("age_band", STR, "15-24, 25-34, ..., 75+"),
        Column("region", STR, "province"),
        Column("customer_since", I64, "ts the relationship started (may be < 0)"),
        Column("is_business", BOOL, "customer holds a business account"),
        Column("phone_hash", I64, "salted hash of the phone number on file", nullable=True),
        Column("email_hash", I64, "salted hash of the e-mail on file", nullable=True),
    ),
    "accounts": _schema(
        Column("account_id", I64, "local pseudonym of the account"),
        Column("customer_id", I64, "owner"),
        Column("iban_hash", I64, "salted hash of the IBAN"),
        Column("product", STR, "current / savings / business"),
        Column("opened_ts", I64, "ts the account was opened (may be < 0)"),
        Column("daily_limit_eur", F64, "online transfer limit per day"),
    ),
    "transactions": _schema(
        Column("ts", I64, "booking time"),
        Column("account_id", I64, "this bank's account"),
        Column("direction", STR, "out / in"),
        Column("kind", STR, "transfer / own_transfer / atm / card / crypto"),
        Column("counterparty_iban_hash", I64, "other side's IBAN hash (null for atm/card)", nullable=True),
        Column("counterparty_bank", STR, "partner name of the other side's bank, or 'other'", nullable=True),
        Column("amount_eur", F64, "amount"),
        Column("channel", STR, "app / web / branch / atm / card"),
        Column("is_instant", BOOL, "instant payment"),
        Column("new_payee", BOOL, "first transfer from this account to this counterparty (out only)"),
        Column("name_check", STR, "IBAN-name check: match / close / mismatch / none"),
    ),
    "sessions": _schema(
        Column("ts", I64, "login time"),
        Column("customer_id", I64, "who logged in"),
        Column("device_hash", I64, "salted hash of the device fingerprint"),
        Column("new_device", BOOL, "first login of this customer from this device"),
        Column("remote_access_tool", BOOL, "screen-sharing / remote-access software detected"),
    ),
    "reports": _schema(
        Column("ts", I64, "time the customer reported fraud to the bank"),
        Column("customer_id", I64, "reporting customer (the victim)"),
        Column("reported_iban_hash", I64, "IBAN the money went to", nullable=True),
        Column("fraud_type", STR, "type as described by the victim"),
        Column("amount_eur", F64, "amount reported lost"),
    ),
}

TELCO_TABLES: dict[str, pa.Schema] = {
    "subscribers": _schema(
        Column("subscriber_id", I64, "local pseudonym of the subscription"),
        Column("phone_hash", I64, "salted hash of the number"),
        Column("prepaid", BOOL, "prepaid subscription"),
        Column("activated_ts", I64, "ts the number was activated here (may be < 0)"),
        Column("age_band", STR, "holder's age band (null for anonymous prepaid)", nullable=True),
    ),
    "sim_events": _schema(
        Column("ts", I64, "event time"),
        Column("subscriber_id", I64, "subscription"),
        Column("event", STR, "activate / swap / port_in / port_out / esim"),
        Column("handset_hash", I64, "salted hash of the handset (IMEI)"),
    ),
    "calls": _schema(
        Column("ts", I64, "start time"),
        Column("subscriber_id", I64, "this telco's subscriber on this side of the record"),
        Column("direction", STR, "in / out"),
        Column("kind", STR, "call / sms"),
        Column("other_party_hash", I64, "salted hash of the other party's real number"),
        Column("presented_caller_id_hash", I64, "caller-ID shown to the callee (inbound)"),
        Column("origin", STR, "on_net / off_net / international: network the call entered from"),
        Column("caller_id_mismatch", BOOL, "presented domestic caller-ID arrived on an international trunk"),
        Column("duration_s", I64, "call seconds (0 for sms)"),
    ),
    "flagged_numbers": _schema(
        Column("ts", I64, "time the number was flagged after a report"),
        Column("phone_hash", I64, "flagged number"),
    ),
}

MARKETPLACE_TABLES: dict[str, pa.Schema] = {
    "users": _schema(
        Column("user_id", I64, "local pseudonym"),
        Column("created_ts", I64, "account creation ts (may be < 0)"),
        Column("phone_hash", I64, "salted hash of the verified phone", nullable=True),
        Column("email_hash", I64, "salted hash of the e-mail", nullable=True),
        Column("payout_iban_hash", I64, "salted hash of the payout IBAN", nullable=True),
        Column("device_hash", I64, "salted hash of the sign-up device"),
    ),
    "listings": _schema(
        Column("ts", I64, "listing time"),
        Column("listing_id", I64, "local pseudonym"),
        Column("user_id", I64, "seller"),
        Column("category", STR, "category"),
        Column("price_eur", F64, "asking price"),
        Column("price_ratio", F64, "price / category median"),
        Column("photos_reused", BOOL, "photos seen before on the platform"),
    ),
    "messages": _schema(
        Column("ts", I64, "sent"),
        Column("from_user_id", I64, "sender"),
        Column("to_user_id", I64, "recipient"),
        Column("contains_phone", BOOL, "text contains a phone number"),
        Column("contains_iban", BOOL, "text contains an IBAN"),
        Column("contains_url", BOOL, "text contains a link"),
        Column("asks_off_platform", BOOL, "asks to move off the platform / pay outside it"),
    ),
    "orders": _schema(
        Column("ts", I64, "order time"),
        Column("order_id", I64, "local pseudonym"),
        Column("buyer_user_id", I64, "buyer"),
        Column("seller_user_id", I64, "seller"),
        Column("amount_eur", F64, "price paid"),
        Column("payment_method", STR, "escrow / bank_transfer / payment_link"),
        Column("shipping_label_ts", I64, "ts a shipping label was created (null: none yet)", nullable=True),
        Column("delivered_ts", I64, "ts of delivery (null: not delivered)", nullable=True),
    ),
    "reports": _schema(
        Column("ts", I64, "report time"),
        Column("reporter_user_id", I64, "who reported"),
        Column("reported_user_id", I64, "who was reported"),
        Column("reason", STR, "non_delivery / fake_payment / other"),
    ),
}

SIGNALS_TABLES: dict[str, pa.Schema] = {
    # Known-answer and placebo partners: already-made evidence per entity and decision time.
    "entities": _schema(
        Column("entity_id", I64, "local pseudonym"),
        Column("phone_hash", I64, "join key", nullable=True),
    ),
    "signals": _schema(
        Column("ts", I64, "decision time the evidence refers to (strictly before it)"),
        Column("entity_id", I64, "entity"),
        Column("x", F64, "evidence value"),
    ),
}

TABLES_BY_KIND: dict[str, dict[str, pa.Schema]] = {
    "bank": BANK_TABLES,
    "telco": TELCO_TABLES,
    "marketplace": MARKETPLACE_TABLES,
    SIGNALS_KIND: SIGNALS_TABLES,
}

# --------------------------------------------------------------------------------------------
# Hidden truth (never given to a partner; used for labels-with-timestamps and checks)
# --------------------------------------------------------------------------------------------
TRUTH_TABLES: dict[str, pa.Schema] = {
    "cases": _schema(
        Column("case_id", I64, "one victim journey"),
        Column("fraud_type", STR, "one of FRAUD_TYPES"),
        Column("variant", STR, "modus operandi variant (changes after barriers)"),
        Column("crew_id", I64, "crew that ran it"),
        Column("victim_person_id", I64, "victim"),
        *[Column(f"ts_{p}", I64, f"start of phase {p}") for p in PHASES],
        Column("t_loss", I64, "first money-out of the victim (-1: no money left)"),
        Column("loss_eur", F64, "total money out"),
        Column("reported", BOOL, "victim reported it"),
        Column("report_ts", I64, "report time (-1 if not reported)"),
    ),
    "money_outs": _schema(
        Column("case_id", I64, "case"),
        Column("ts", I64, "time the money left the victim"),
        Column("amount_eur", F64, "amount"),
        Column("cashout_ts", I64, "time the mule moved it on (irreversible)"),
    ),
    "case_entities": _schema(
        Column("case_id", I64, "case"),
        Column("partner", STR, "partner name"),
        Column("entity_id", I64, "the partner's entity id (customer / subscriber / user / entity)"),
        Column("role", STR, "victim / mule / fraudster"),
    ),
    "provenance": _schema(
        Column("partner", STR, "partner name"),
        Column("table", STR, "table name"),
        Column("row", I64, "row number in that table"),
        Column("case_id", I64, "case that injected it"),
        Column("phase", STR, "phase it belongs to"),
    ),
    "entities": _schema(
        # Every partner entity and the person behind it; lets evaluation and checks reach truth.
        Column("partner", STR, "partner name"),
        Column("entity_id", I64, "the partner's entity id"),
        Column("person_id", I64, "person (-1: none, e.g. a crew's burner)"),
        Column("role", STR, "ordinary / mule / fraudster"),
    ),
    "persons": _schema(
        Column("person_id", I64, "person"),
        Column("birth_year", I32, "year of birth"),
        Column("age", I32, "age at world start"),
        Column("region", STR, "province"),
        Column("household_id", I64, "household"),
        Column("digital_skill", F64, "0..1"),
        Column("savings_eur", F64, "savings balance"),
        Column("income_eur", F64, "monthly net income"),
        Column("susceptibility", F64, "relative risk of falling for a scam"),
        Column("role", STR, "ordinary / mule / fraudster"),
        Column("crew_id", I64, "crew (-1: none)"),
    ),
    "crews": _schema(
        Column("crew_id", I64, "crew"),
        Column("fraud_type", STR, "what it runs"),
        Column("variant", STR, "modus operandi at the start"),
        Column("adapted_variant", STR, "modus operandi after adapting to a barrier (or same)"),
        Column("adapt_ts", I64, "time the crew switched (-1: never)"),
        Column("size", I64, "members"),
    ),
}
