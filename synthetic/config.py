"""World configuration: frozen, validated, every field documented with unit, default and range.

A world is fully determined by (WorldConfig, seed). Presets live in ``synthetic/presets/*.yaml`` and
are partial overrides of these defaults. Validation happens once, here, at the boundary; errors are
turned into :class:`ConfigError` with one line per problem naming field, value and what is allowed.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from synthetic.schema import FRAUD_TYPES, PARTNER_KINDS, PHASES, PLACEBO, SIGNALS_KIND, partner_names

PRESETS_DIR = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """A world configuration that cannot be used; the message names field, value and allowed values."""


class _Frozen(BaseModel):
    # NaN passes no range check and inf only one-sided ones: neither is ever a meaningful world setting.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class PopulationConfig(_Frozen):
    persons: int = Field(20_000, ge=500, le=5_000_000, description="people aged 15+ in the world (count)")
    days: int = Field(180, ge=14, le=1095, description="horizon of the world (days)")
    start_date: str = Field("2025-01-01", description="calendar date of day 0 (ISO yyyy-mm-dd)")
    mean_household_size: float = Field(1.9, ge=1.0, le=5.0, description="persons per household (mean)")
    business_share: float = Field(0.06, ge=0.0, le=0.5, description="share of persons with a business account")
    marketplace_user_share: float = Field(
        0.55, ge=0.0, le=1.0, description="share of persons with an account at any marketplace"
    )

    @field_validator("start_date", mode="before")
    @classmethod
    def _unquoted_date(cls, v: Any) -> Any:
        """YAML reads an unquoted 2025-01-01 as a date; it means the same as the quoted text."""
        return v.isoformat() if isinstance(v, date) and not isinstance(v, datetime) else v

    @field_validator("start_date")
    @classmethod
    def _real_date(cls, v: str) -> str:
        """A real calendar date written yyyy-mm-dd ('2025-99-99' would otherwise reach the manifest)."""
        try:
            parsed = date.fromisoformat(v)
        except ValueError:
            parsed = None
        if parsed is None or parsed.isoformat() != v or not 1900 <= parsed.year <= 2200:
            raise ValueError(f"{v!r} is not a date; allowed: a calendar date yyyy-mm-dd, years 1900-2200")
        return v


class PartnersConfig(_Frozen):
    banks: int = Field(3, ge=1, le=10, description="partner banks (count)")
    bank_shares: list[float] | None = Field(
        None,
        description="market share of each partner bank (0..1, sum <= 1; the rest banks elsewhere). "
        "Default: 0.35, 0.27, 0.18, then 0.03 each",
    )
    telcos: int = Field(1, ge=1, le=5, description="partner telcos (count)")
    telco_shares: list[float] | None = Field(
        None, description="subscriber share of each partner telco (default 0.40, then 0.2 each)"
    )
    marketplaces: int = Field(1, ge=1, le=3, description="partner marketplaces (count)")
    marketplace_shares: list[float] | None = Field(
        None, description="share of marketplace users at each partner marketplace (default 0.8, then 0.1)"
    )
    placebo: bool = Field(False, description="add a placebo partner whose data is independent of fraud")

    @model_validator(mode="after")
    def _shares_fit(self) -> PartnersConfig:
        for field, count, n in (
            ("bank_shares", "banks", self.banks),
            ("telco_shares", "telcos", self.telcos),
            ("marketplace_shares", "marketplaces", self.marketplaces),
        ):
            shares = getattr(self, field)
            if shares is None:
                continue
            if len(shares) != n:
                raise ValueError(
                    f"{field}: {shares} has {len(shares)} entries; "
                    f"allowed: exactly {n}, one per partner ({count} = {n})"
                )
            if any(s <= 0 for s in shares) or sum(shares) > 1.0 + 1e-9:
                raise ValueError(f"{field}: {shares}; allowed: each > 0 and sum <= 1")
        return self

    def resolved_shares(self, kind: str) -> list[float]:
        """Market share per partner of `kind`, defaults filled in."""
        n = {"bank": self.banks, "telco": self.telcos, "marketplace": self.marketplaces}[kind]
        given = {"bank": self.bank_shares, "telco": self.telco_shares, "marketplace": self.marketplace_shares}[kind]
        if given is not None:
            return list(given)
        head = {"bank": [0.35, 0.27, 0.18], "telco": [0.40], "marketplace": [0.8]}[kind]
        tail = {"bank": 0.03, "telco": 0.2, "marketplace": 0.1}[kind]
        shares = (head + [tail] * n)[:n]
        total = sum(shares)
        return [s / total * 0.95 for s in shares] if total > 0.95 else shares


class FraudTypeConfig(_Frozen):
    victims_per_100k_year: float = Field(..., ge=0.0, le=20_000.0, description="victims per 100k persons per year")
    multiplier: float = Field(
        1.0, ge=1.0, le=1000.0, description="prevalence multiplier for study power; national figures divide it out"
    )
    report_probability: float = Field(0.35, ge=0.0, le=1.0, description="probability the victim reports")
    report_delay_hours: float = Field(24.0, ge=0.1, le=24 * 60, description="median delay until report (hours)")
    loss_median_eur: float = Field(..., gt=0, le=1e6, description="median loss per victim (EUR)")
    loss_sigma: float = Field(1.0, ge=0.0, le=3.0, description="log-normal spread of the loss")
    victim_age_skew: float = Field(
        0.0, ge=-3.0, le=3.0, description="log-odds change per 10 years of age (positive: older victims)"
    )
    victims_per_mule: float = Field(2.0, ge=1.0, le=50.0, description="mean victims paying into one mule account")


def _default_fraud() -> dict[str, FraudTypeConfig]:
    # Calibration sources in synthetic.calibration.CALIBRATION_TARGETS. Multipliers raise rare types for power.
    return {
        "helpdesk": FraudTypeConfig(
            victims_per_100k_year=69,
            multiplier=25,
            report_probability=0.5,
            report_delay_hours=6,
            loss_median_eur=2500,
            loss_sigma=0.6,
            victim_age_skew=1.0,
            victims_per_mule=2.5,
        ),
        "purchase": FraudTypeConfig(
            victims_per_100k_year=5_600,
            report_probability=0.25,
            report_delay_hours=24 * 6,
            loss_median_eur=40,
            loss_sigma=1.0,
            victim_age_skew=-0.25,
            victims_per_mule=8.0,
        ),
        "sale": FraudTypeConfig(
            victims_per_100k_year=1_300,
            report_probability=0.3,
            report_delay_hours=12,
            loss_median_eur=450,
            loss_sigma=0.8,
            victim_age_skew=0.1,
            victims_per_mule=3.0,
        ),
        "whatsapp": FraudTypeConfig(
            victims_per_100k_year=900,
            report_probability=0.4,
            report_delay_hours=10,
            loss_median_eur=2000,
            loss_sigma=0.9,
            victim_age_skew=0.6,
            victims_per_mule=2.0,
        ),
        "invoice": FraudTypeConfig(
            victims_per_100k_year=60,
            multiplier=5,
            report_probability=0.5,
            report_delay_hours=24 * 5,
            loss_median_eur=8000,
            loss_sigma=0.9,
            victims_per_mule=1.5,
        ),
    }


def _default_signal() -> dict[str, dict[str, dict[str, float]]]:
    # Probability that a phase leaves its designed trace at a partner kind (0 = invisible).
    s: dict[str, dict[str, dict[str, float]]] = {ft: {ph: {} for ph in PHASES} for ft in FRAUD_TYPES}
    s["helpdesk"]["preparation"] = {"telco": 0.7, "bank": 0.6}
    s["helpdesk"]["contact"] = {"telco": 0.8}
    s["helpdesk"]["convincing"] = {"bank": 0.6}
    s["helpdesk"]["money_transfer"] = {"bank": 0.7}
    s["helpdesk"]["cash_out"] = {"bank": 0.8}
    s["purchase"]["preparation"] = {"marketplace": 0.7, "bank": 0.5}
    s["purchase"]["contact"] = {"marketplace": 0.6}
    s["purchase"]["convincing"] = {"marketplace": 0.6}
    s["purchase"]["money_transfer"] = {"bank": 0.5}
    s["purchase"]["cash_out"] = {"bank": 0.7}
    s["sale"]["preparation"] = {"marketplace": 0.6, "telco": 0.5}
    s["sale"]["contact"] = {"marketplace": 0.7, "telco": 0.6}
    s["sale"]["convincing"] = {"bank": 0.6}
    s["sale"]["money_transfer"] = {"bank": 0.6}
    s["sale"]["cash_out"] = {"bank": 0.7}
    s["whatsapp"]["preparation"] = {"telco": 0.7, "bank": 0.5}
    s["whatsapp"]["contact"] = {"telco": 0.7}
    s["whatsapp"]["money_transfer"] = {"bank": 0.6}
    s["whatsapp"]["cash_out"] = {"bank": 0.7}
    s["invoice"]["money_transfer"] = {"bank": 0.7}
    s["invoice"]["cash_out"] = {"bank": 0.7}
    return s


class KeysConfig(_Frozen):
    phone_coverage: float = Field(0.92, ge=0, le=1, description="share of customers whose phone a partner holds")
    email_coverage: float = Field(0.75, ge=0, le=1, description="share of customers whose e-mail a partner holds")
    payout_iban_coverage: float = Field(0.7, ge=0, le=1, description="share of marketplace users with a payout IBAN")
    stale_phone_rate: float = Field(0.05, ge=0, le=1, description="share of phone keys that are an old number")
    household_phone_rate: float = Field(
        0.03, ge=0, le=1, description="share of phone keys that are a household's shared number"
    )
    format_error_rate: float = Field(0.01, ge=0, le=1, description="share of keys mangled by a typo")
    email_alias_rate: float = Field(0.05, ge=0, le=1, description="share of e-mails stored as an alias")


class BehaviourConfig(_Frozen):
    transfers_per_day: float = Field(0.35, gt=0, le=20, description="outgoing transfers per person per day (mean)")
    logins_per_day: float = Field(0.45, gt=0, le=20, description="bank logins per person per day (mean)")
    calls_per_day: float = Field(0.8, gt=0, le=50, description="calls + sms per phone per day (mean)")
    listings_per_user_day: float = Field(0.01, ge=0, le=5, description="listings per marketplace user per day")
    orders_per_user_day: float = Field(0.012, ge=0, le=5, description="orders per marketplace user per day")
    activity_dispersion: float = Field(
        1.5, gt=0, le=10, description="gamma shape of per-person activity (smaller: more unequal)"
    )
    # Legitimate look-alikes (per person per year unless said otherwise)
    senior_large_transfer_rate: float = Field(0.6, ge=0, le=50, description="large one-off transfers by 65+ per year")
    real_bank_call_rate: float = Field(1.0, ge=0, le=50, description="real calls from a bank per customer per year")
    new_device_rate: float = Field(2.0, ge=0, le=50, description="logins from a new device per person per year")
    remote_access_rate: float = Field(
        0.03, ge=0, le=5, description="legitimate remote-access sessions per person per year (IT help)"
    )
    sim_swap_rate: float = Field(0.25, ge=0, le=5, description="ordinary SIM swaps / new handsets per phone per year")
    port_rate: float = Field(0.08, ge=0, le=5, description="ordinary number ports per phone per year")
    sim_activation_rate: float = Field(
        0.1, ge=0, le=5, description="ordinary SIM-card activations (new card for a number) per phone per year"
    )
    family_request_rate: float = Field(
        0.5, ge=0, le=20, description="genuine urgent family money requests per person per year"
    )
    new_number_share: float = Field(
        0.04,
        ge=0,
        le=1,
        description="share of persons whose phone number is activated during the horizon "
        "(look-alike of crews' fresh prepaid numbers)",
    )
    new_marketplace_user_share: float = Field(
        0.08,
        ge=0,
        le=1,
        description="share of marketplace accounts opened during the horizon "
        "(look-alike of crews' fresh seller / buyer accounts)",
    )
    young_new_account_rate: float = Field(
        0.15, ge=0, le=5, description="new accounts per young person (18-25) per year"
    )
    cheap_listing_share: float = Field(0.05, ge=0, le=1, description="share of honest listings priced < 60% of median")
    foreign_call_share: float = Field(0.04, ge=0, le=1, description="share of calls from international origin")
    new_payee_share: float = Field(0.12, ge=0, le=1, description="share of transfers to a payee never paid before")


class MuleConfig(_Frozen):
    lifetime_days: float = Field(14.0, ge=1, le=365, description="days a mule account is used (mean)")
    forward_share: float = Field(0.9, ge=0.5, le=1.0, description="share of received money forwarded on")
    forward_hours: float = Field(6.0, ge=0.1, le=96, description="median hours before a mule forwards money")
    new_account_share: float = Field(0.6, ge=0, le=1, description="share of mules using a freshly opened account")


class CrewConfig(_Frozen):
    members: int = Field(4, ge=1, le=50, description="members per crew (mean)")
    cases_per_crew: float = Field(25.0, ge=1, le=10_000, description="cases one crew runs over the horizon (mean)")
    sims_per_crew: int = Field(6, ge=1, le=200, description="prepaid SIMs a crew buys")
    devices_per_crew: int = Field(3, ge=1, le=100, description="devices a crew shares across accounts")


class BarrierConfig(_Frozen):
    name: str = Field(..., min_length=1, max_length=200, description="what the barrier is")
    day: int = Field(
        ..., ge=0, le=100_000, description="day it takes effect (a day past the horizon never takes effect)"
    )
    fraud_type: Literal["helpdesk", "purchase", "sale", "whatsapp", "invoice"] = Field(..., description="affected type")
    removes: Literal["caller_id_spoofing", "payment_link", "off_platform_payment"] = Field(
        ..., description="trace the barrier removes"
    )
    adapt_share: float = Field(0.7, ge=0, le=1, description="share of crews that switch variant")
    adapt_delay_days: float = Field(14, ge=0, le=365, description="mean days until a crew adapts")


class KnownAnswerConfig(_Frozen):
    """Closed-form world: each partner's evidence is a unit-variance Gaussian shifted by d_p for positives."""

    entities: int = Field(20_000, ge=200, le=2_000_000, description="people (count)")
    prevalence: float = Field(0.05, gt=0, lt=0.5, description="share of people who are fraud cases")
    bank_shifts: list[float] = Field([1.0, 1.0, 1.0], description="d_p of each bank (horizontal split)")
    bank_case_shares: list[float] | None = Field(
        None, description="share of cases at each bank (None: same as customers; skew it for non-IID)"
    )
    telco_shift: float = Field(0.8, ge=0, le=10, description="d_p of the telco")
    marketplace_shift: float = Field(0.5, ge=0, le=10, description="d_p of the marketplace")
    placebo: bool = Field(True, description="add a placebo partner (d = 0)")
    days: int = Field(60, ge=14, le=1095, description="horizon (days); one decision per entity per day")

    @model_validator(mode="after")
    def _banks_fit(self) -> KnownAnswerConfig:
        """Lengths and sums the field bounds cannot express (also checked again by the generator)."""
        n = len(self.bank_shifts)
        if not 1 <= n <= 10:
            raise ValueError(f"bank_shifts = {self.bank_shifts}: allowed: 1 to 10 banks")
        if any(not 0.0 <= d <= 10.0 for d in self.bank_shifts):
            raise ValueError(f"bank_shifts = {self.bank_shifts}: allowed: each in [0, 10]")
        shares = self.bank_case_shares
        if shares is not None and len(shares) != n:
            raise ValueError(
                f"bank_case_shares = {shares}: has {len(shares)} entries; allowed: exactly {n}, one per bank of "
                f"bank_shifts = {self.bank_shifts}"
            )
        if shares is not None and (any(not x >= 0.0 for x in shares) or abs(sum(shares) - 1.0) > 1e-6):
            raise ValueError(f"bank_case_shares = {shares}: allowed: each >= 0, summing to 1")
        if self.entities < 10 * n:
            raise ValueError(f"entities = {self.entities}: allowed: at least 10 per bank ({10 * n})")
        return self

    def partner_names(self) -> list[str]:
        """``bank_1..bank_B`` (one per bank shift), ``telco``, ``marketplace``, then ``placebo`` if asked for."""
        names = [*partner_names("bank", len(self.bank_shifts)), "telco", "marketplace"]
        return names + ([PLACEBO] if self.placebo else [])


class GenerationConfig(_Frozen):
    """How a realistic world is generated: person blocks streamed to disk (:mod:`synthetic.blocks`).

    Present only when asked for: a config without it generates exactly as before (same bytes). With it, the
    legitimate activity of each block of ``block_persons`` persons has its own random stream (world root, block
    index), so the world's bytes depend on the block size (recorded in the manifest's config) but never on the
    number of workers; memory is bounded by one block, not by the population.
    """

    block_persons: int = Field(
        20_000, ge=500, le=1_000_000, description="persons per block (count); fixes the world's bytes"
    )
    window_days: int = Field(
        7, ge=1, le=92, description="days per merge window when the blocks' rows are put in time order (days)"
    )


class WorldConfig(_Frozen):
    mode: Literal["realistic", "known_answer"] = Field("realistic", description="kind of world")
    generation: GenerationConfig | None = Field(
        None,
        description="person-block generation streamed to disk (None: the in-memory generator, the bytes of "
        "every world made before it)",
    )
    population: PopulationConfig = PopulationConfig()
    partners: PartnersConfig = PartnersConfig()
    fraud: dict[str, FraudTypeConfig] = Field(
        default_factory=_default_fraud, description="per fraud type: prevalence, reporting, loss"
    )
    signal: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=_default_signal,
        description="signal[fraud_type][phase][partner_kind]: probability a phase leaves its trace (0..1)",
    )
    keys: KeysConfig = KeysConfig()
    behaviour: BehaviourConfig = BehaviourConfig()
    mules: MuleConfig = MuleConfig()
    crews: CrewConfig = CrewConfig()
    barriers: list[BarrierConfig] = Field(default_factory=list, description="barriers against fraud over time")
    known_answer: KnownAnswerConfig = KnownAnswerConfig()

    @field_validator("fraud")
    @classmethod
    def _fraud_types_known(cls, v: dict[str, FraudTypeConfig]) -> dict[str, FraudTypeConfig]:
        unknown = sorted(set(v) - set(FRAUD_TYPES))
        if unknown:
            raise ValueError(f"unknown fraud type {unknown[0]!r}; allowed: {', '.join(FRAUD_TYPES)}")
        missing = [ft for ft in FRAUD_TYPES if ft not in v]
        if missing:
            defaults = _default_fraud()
            v = {**v, **{ft: defaults[ft] for ft in missing}}
        return v

    @field_validator("signal")
    @classmethod
    def _signal_shape(cls, v: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
        for ft, phases in v.items():
            if ft not in FRAUD_TYPES:
                raise ValueError(f"signal: unknown fraud type {ft!r}; allowed: {', '.join(FRAUD_TYPES)}")
            for ph, kinds in phases.items():
                if ph not in PHASES:
                    raise ValueError(f"signal.{ft}: unknown phase {ph!r}; allowed: {', '.join(PHASES)}")
                for kind, p in kinds.items():
                    if kind not in PARTNER_KINDS:
                        raise ValueError(
                            f"signal.{ft}.{ph}: unknown partner kind {kind!r}; allowed: {', '.join(PARTNER_KINDS)}"
                        )
                    if not (0.0 <= p <= 1.0) or math.isnan(p):
                        raise ValueError(f"signal.{ft}.{ph}.{kind}: {p}; allowed: a probability in [0, 1]")
        # A partial override changes only the knobs it names; every other knob keeps its default.
        merged = _default_signal()
        for ft, phases in v.items():
            for ph, kinds in phases.items():
                merged[ft][ph] = {**merged[ft][ph], **kinds}
        return merged

    @model_validator(mode="after")
    def _blocks_fit(self) -> WorldConfig:
        if self.generation is not None and self.mode != "realistic":
            raise ValueError(f"generation: set for mode {self.mode!r}; allowed: only with mode 'realistic'")
        if self.generation is not None and self.partners.placebo:
            raise ValueError(
                "generation: person blocks with partners.placebo = true; allowed: placebo false (the placebo "
                "partner is built in memory, O(persons x days))"
            )
        return self

    @model_serializer(mode="wrap")
    def _without_unset_generation(self, handler: Any) -> Any:
        """``generation: None`` is left out, so every config made before it dumps (and hashes) as it did."""
        data = handler(self)
        if isinstance(data, dict) and data.get("generation", 0) is None:
            del data["generation"]
        return data

    def signal_p(self, fraud_type: str, phase: str, kind: str) -> float:
        return self.signal.get(fraud_type, {}).get(phase, {}).get(kind, 0.0)

    def partner_kinds(self) -> dict[str, str]:
        """Partner name → kind of the world this config makes, in the world's order, without generating it.

        Realistic: banks, telcos, marketplaces (:func:`synthetic.schema.partner_names`), then the placebo.
        Known-answer: every partner is of kind ``signals`` — one per bank shift, ``telco``, ``marketplace``
        and the placebo.
        """
        if self.mode == "known_answer":
            return {n: SIGNALS_KIND for n in self.known_answer.partner_names()}
        p = self.partners
        kinds = {n: "bank" for n in partner_names("bank", p.banks)}
        kinds.update({n: "telco" for n in partner_names("telco", p.telcos)})
        kinds.update({n: "marketplace" for n in partner_names("marketplace", p.marketplaces)})
        return kinds | ({PLACEBO: SIGNALS_KIND} if p.placebo else {})


# ------------------------------------------------------------------------------------------------
# Loading, overrides, presets, and readable errors
# ------------------------------------------------------------------------------------------------
def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem: field path, offending value, what is allowed."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in ("__root__",))
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
        value = e.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field; check the spelling against `fedsim world generate --help` / the docs"
        if not loc and ":" in msg:  # a whole-config check already names its field, value and range
            lines.append(f"{prefix}{msg}")
        else:
            lines.append(f"{where} = {shown}: {msg}")
    return "\n".join(lines)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


class YamlFileError(ValueError):
    """A YAML file that cannot be read as one mapping of fields; the message names the file (and line)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last silently) and a
    key that is not a plain value (``{[1, 2]: 3}`` would otherwise end in a TypeError)."""


def _construct_unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # a list or mapping used as a key
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is a {type(key).__name__}; allowed: a name", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _construct_timestamp(loader: UniqueKeyLoader, node: yaml.ScalarNode) -> Any:
    """An unquoted date-like scalar that is no real date (2025-99-99) stays text, so the field that holds
    it refuses it by name (PyYAML would raise a bare ValueError)."""
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)

MAX_YAML_BYTES = 10_000_000
"""Largest config file read (bytes); configs are a few kB."""


_TOO_DEEP = object()
MAX_DEPTH = 32
"""Deepest nesting of lists/mappings a config file may have (world configs need 4)."""


def read_yaml_file(path: str | Path, what: str) -> Any:
    """Parse one YAML file with unique keys; every file-level problem becomes a :class:`YamlFileError`.

    ``what`` names the file in messages (``"world config file"``). Refused: a missing file, a folder, an
    unreadable or huge file, bytes that are not UTF-8, invalid YAML, duplicate or unhashable keys and
    nesting too deep for the parser (RecursionError). An empty file gives None (the caller decides).
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise YamlFileError(f"{what} {str(path)!r} is a folder; allowed: a YAML file")
        if path.stat().st_size > MAX_YAML_BYTES:
            raise YamlFileError(f"{what} {str(path)!r} is larger than {MAX_YAML_BYTES:,} bytes; allowed: a config")
        raw = path.read_bytes()
    except OSError as err:
        raise YamlFileError(f"cannot read {what} {str(path)!r}: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise YamlFileError(
            f"{what} {str(path)!r}: byte {err.start} is not UTF-8 text; allowed: a UTF-8 YAML file"
        ) from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{str(path)!r}, line {mark.line + 1}, column {mark.column + 1}" if mark else repr(str(path))
        problem = getattr(err, "problem", None) or str(err)
        raise YamlFileError(f"{what} {where}: not valid YAML: {problem}") from None
    except RecursionError:
        data = _TOO_DEEP
    if data is _TOO_DEEP or _too_deep(data):
        raise YamlFileError(f"{what} {str(path)!r}: nested too deeply; allowed: at most {MAX_DEPTH} levels")
    return data


def _too_deep(data: Any) -> bool:
    """True when ``data`` nests lists/mappings deeper than :data:`MAX_DEPTH` (checked without recursion)."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return False


def _read_yaml(path: Path) -> dict[str, Any]:
    """A preset or world config file: a non-empty mapping of fields (an empty file is refused, not the default
    world: a truncated or mistyped file must not silently become a 20,000-person world)."""
    try:
        data = read_yaml_file(path, "world config file")
    except YamlFileError as err:
        raise ConfigError(str(err)) from None
    if data is None:
        raise ConfigError(
            f"world config file {str(path)!r} is empty; allowed: a mapping of fields (e.g. `preset: small`)"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"world config file {str(path)!r}: top level must be a mapping of fields")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"world config file {str(path)!r}: key {bad[0]!r}; allowed: a field name")
    return data


def load_preset_dict(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise ConfigError(f"preset = {name!r}: unknown preset; allowed: {', '.join(preset_names())}")
    return _read_yaml(PRESETS_DIR / f"{name}.yaml")


def _inherit(data: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """A file or preset may start from another preset (`preset: NAME`) and override it."""
    if "preset" not in data:
        return data
    if depth > 5:
        raise ConfigError("preset: presets inherit too deeply (a cycle?)")
    data = dict(data)
    base = _inherit(load_preset_dict(str(data.pop("preset"))), depth + 1)
    return _deep_merge(base, data)


def build_config(
    *, preset: str | None = None, config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> WorldConfig:
    """Preset (or file) + overrides → validated WorldConfig. Raises ConfigError with readable lines."""
    if preset is not None and config_file is not None:
        raise ConfigError("give either a preset or a config file, not both")
    data: dict[str, Any] = {}
    if preset is not None:
        data = _inherit(load_preset_dict(preset))
    elif config_file is not None:
        data = _inherit(_read_yaml(Path(config_file)))
    data = _deep_merge(data, overrides or {})
    try:
        return WorldConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def shorthand_overrides(
    *, persons: int | None = None, days: int | None = None, block_persons: int | None = None
) -> dict[str, Any]:
    """CLI shorthands (--persons, --days, --block-persons) as overrides; the first two apply to either world mode."""
    pop: dict[str, Any] = {}
    ka: dict[str, Any] = {}
    if persons is not None:
        pop["persons"] = persons
        ka["entities"] = persons
    if days is not None:
        pop["days"] = days
        ka["days"] = days
    out: dict[str, Any] = {}
    if pop:
        out["population"] = pop
        out["known_answer"] = ka
    if block_persons is not None:
        out["generation"] = {"block_persons": block_persons}
    return out
