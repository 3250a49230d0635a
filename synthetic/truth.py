"""The hidden truth of a realistic world: cases, money-outs, who took part where, provenance, persons, crews.

Building the partner views (:mod:`synthetic.views`) draws each partner's pseudonyms and decides which
ledger rows a partner sees; it writes down what the truth needs in a :class:`ViewTrace` (which partner
rows a case injected, which entity is which person). :class:`TruthBuilder` turns the fraud context, the
population and that trace into the ``truth/*`` tables of :data:`synthetic.schema.TRUTH_TABLES`.
Nothing here is ever given to a partner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from synthetic.config import WorldConfig
from synthetic.fraud.common import FraudContext
from synthetic.ids import Keys
from synthetic.population import Population
from synthetic.schema import PHASES, TRUTH_TABLES, partner_names
from synthetic.world_data import PartnerView

_EMPTY_CASE_COLUMNS = (
    "case_id",
    "victim",
    "mule_acct",
    "burner",
    "fake_user",
    "reported",
    "report_ts",
    "loss_eur",
    "t_loss",
)


def merged_cases(ctx: FraudContext) -> dict[str, np.ndarray]:
    """One column dict over every case the injectors made: case columns and case-party columns side by side."""
    merged: dict[str, np.ndarray] = {}
    for part in (ctx.cases, ctx.case_parties):
        for k in part[0] if part else []:
            merged[k] = np.concatenate([p[k] for p in part])
    if not merged:
        merged = {k: np.zeros(0, dtype=np.int64) for k in _EMPTY_CASE_COLUMNS}
        merged["fraud_type"] = np.zeros(0, dtype=object)
        merged["victim_kinds"] = np.zeros(0, dtype=object)
    return merged


@dataclass
class ViewTrace:
    """What building the partner views leaves for the truth tables (the views themselves never hold it)."""

    provenance: list[dict[str, np.ndarray]] = field(default_factory=list)
    entity_rows: list[dict[str, np.ndarray]] = field(default_factory=list)
    person_entity: dict[str, np.ndarray] = field(default_factory=dict)
    """partner → the partner's entity id of each person (-1: not held)."""
    market_uid: dict[str, np.ndarray] = field(default_factory=dict)
    """marketplace → user id of each marketplace account row (-1: elsewhere)."""

    def record(self, partner: str, table: str, case_id: np.ndarray, phase: np.ndarray) -> None:
        """Provenance of the rows of `table` a case injected (case_id >= 0), by row number."""
        hit = case_id >= 0
        if hit.any():
            self.provenance.append(
                {
                    "partner": np.full(int(hit.sum()), partner, dtype=object),
                    "table": np.full(int(hit.sum()), table, dtype=object),
                    "row": np.flatnonzero(hit).astype(np.int64),
                    "case_id": case_id[hit],
                    "phase": phase[hit],
                }
            )

    def register(self, partner: str, entity: np.ndarray, person: np.ndarray, pop: Population) -> None:
        """The person behind each entity of a partner (person < 0: a crew's burner or fake account)."""
        role = np.where(person >= 0, pop.role[np.maximum(person, 0)], "fraudster").astype(object)
        self.entity_rows.append(
            {
                "partner": np.full(len(entity), partner, dtype=object),
                "entity_id": entity,
                "person_id": np.where(person >= 0, pop.person_id[np.maximum(person, 0)], -1),
                "role": role,
            }
        )


@dataclass
class TruthBuilder:
    config: WorldConfig
    pop: Population
    ctx: FraudContext
    cases: dict[str, np.ndarray]
    keys: Keys
    trace: ViewTrace

    def tables(self, partners: dict[str, PartnerView]) -> dict[str, pa.Table]:
        """Every truth table; `partners` are the finished views (burners are found by their phone key)."""
        return {
            "cases": self._cases(),
            "money_outs": self._money_outs(),
            "case_entities": self._case_entities(partners),
            "provenance": self._provenance(),
            "entities": self._entities_table(),
            "persons": self._persons(),
            "crews": self._crews(),
        }

    def _cases(self) -> pa.Table:
        c, pop = self.cases, self.pop
        n = len(c["case_id"])
        return pa.table(
            {
                "case_id": c["case_id"],
                "fraud_type": c["fraud_type"].astype(object, copy=False),
                "variant": c["variant"].astype(object, copy=False) if n else np.zeros(0, str),
                "crew_id": c["crew_id"] if n else np.zeros(0, np.int64),
                "victim_person_id": pop.person_id[c["victim"]],
                **{f"ts_{p}": c[f"ts_{p}"].astype(np.int64) if n else np.zeros(0, np.int64) for p in PHASES},
                "t_loss": c["t_loss"].astype(np.int64),
                "loss_eur": c["loss_eur"].astype(float),
                "reported": c["reported"].astype(bool),
                "report_ts": c["report_ts"].astype(np.int64),
            },
            schema=TRUTH_TABLES["cases"],
        )

    def _money_outs(self) -> pa.Table:
        mo = self.ctx.money_outs
        return pa.table(
            {
                k: np.concatenate([p[k] for p in mo]) if mo else np.zeros(0)
                for k in ("case_id", "ts", "amount_eur", "cashout_ts")
            },
            schema=TRUTH_TABLES["money_outs"],
        )

    def _case_entities(self, partners: dict[str, PartnerView]) -> pa.Table:
        c, acc, person_entity = self.cases, self.pop.accounts, self.trace.person_entity
        p_cfg = self.config.partners
        bank_names = partner_names("bank", p_cfg.banks)
        parts: list[tuple[np.ndarray, str, np.ndarray, str]] = []
        kinds = c["victim_kinds"]
        for name in bank_names:
            parts.append((c["case_id"], name, person_entity[name][c["victim"]], "victim"))
            mule_owner = acc.owner[np.maximum(c["mule_acct"], 0)]
            in_bank = (c["mule_acct"] >= 0) & (acc.bank[np.maximum(c["mule_acct"], 0)] == bank_names.index(name))
            parts.append((c["case_id"][in_bank], name, person_entity[name][mule_owner[in_bank]], "mule"))
        for name in partner_names("telco", p_cfg.telcos):
            has = np.array(["telco" in k for k in kinds], dtype=bool)
            parts.append((c["case_id"][has], name, person_entity[name][c["victim"][has]], "victim"))
            b_sub = self._burner_entity(partners[name], c["burner"])
            parts.append((c["case_id"], name, b_sub, "fraudster"))
        for name in partner_names("marketplace", p_cfg.marketplaces):
            has = np.array(["marketplace" in k for k in kinds], dtype=bool)
            parts.append((c["case_id"][has], name, person_entity[name][c["victim"][has]], "victim"))
            fake = c["fake_user"]
            uid = self.trace.market_uid[name]
            parts.append((c["case_id"], name, np.where(fake >= 0, uid[np.maximum(fake, 0)], -1), "fraudster"))
        cid = np.concatenate([p[0] for p in parts])
        ent = np.concatenate([p[2] for p in parts])
        partner = np.concatenate([np.full(len(p[0]), p[1], dtype=object) for p in parts])
        role = np.concatenate([np.full(len(p[0]), p[3], dtype=object) for p in parts])
        keep = ent >= 0
        order = np.lexsort((ent[keep], partner[keep].astype(object, copy=False), cid[keep]))
        return pa.table(
            {
                "case_id": cid[keep][order],
                "partner": partner[keep][order].astype(object, copy=False),
                "entity_id": ent[keep][order],
                "role": role[keep][order].astype(object, copy=False),
            },
            schema=TRUTH_TABLES["case_entities"],
        )

    def _burner_entity(self, telco: PartnerView, burner: np.ndarray) -> np.ndarray:
        """Subscriber id of each case's burner number at this telco (-1: no burner, or another telco's)."""
        sub = telco.tables["subscribers"]
        phone_hash = sub.column("phone_hash").to_numpy()
        sid = sub.column("subscriber_id").to_numpy()
        order = np.argsort(phone_hash)
        h = self.keys.phone(burner)
        i = np.clip(np.searchsorted(phone_hash[order], h), 0, len(order) - 1)
        return np.where((burner >= 0) & (phone_hash[order][i] == h), sid[order][i], -1)

    def _provenance(self) -> pa.Table:
        p = self.trace.provenance
        cols = ("partner", "table", "row", "case_id", "phase")
        data = {k: np.concatenate([x[k] for x in p]) if p else np.zeros(0) for k in cols}
        return pa.table(
            {
                k: data[k].astype(object, copy=False)
                if k in ("partner", "table", "phase")
                else data[k].astype(np.int64)
                for k in cols
            },
            schema=TRUTH_TABLES["provenance"],
        )

    def _entities_table(self) -> pa.Table:
        e = self.trace.entity_rows
        return pa.table(
            {
                "partner": np.concatenate([x["partner"] for x in e]).astype(object, copy=False),
                "entity_id": np.concatenate([x["entity_id"] for x in e]),
                "person_id": np.concatenate([x["person_id"] for x in e]),
                "role": np.concatenate([x["role"] for x in e]).astype(object, copy=False),
            },
            schema=TRUTH_TABLES["entities"],
        )

    def _persons(self) -> pa.Table:
        pop = self.pop
        start_year = int(self.config.population.start_date[:4])
        return pa.table(
            {
                "person_id": pop.person_id,
                "birth_year": (start_year - pop.age).astype(np.int32),
                "age": pop.age.astype(np.int32),
                "region": pop.region.astype(object, copy=False),
                "household_id": pop.household.astype(np.int64),
                "digital_skill": pop.digital_skill,
                "savings_eur": np.round(pop.savings, 2),
                "income_eur": np.round(pop.income, 2),
                "susceptibility": pop.susceptibility,
                "role": pop.role.astype(object, copy=False),
                "crew_id": pop.crew.astype(np.int64),
            },
            schema=TRUTH_TABLES["persons"],
        )

    def _crews(self) -> pa.Table:
        cr = self.ctx.crews
        return pa.table(
            {
                "crew_id": np.arange(len(cr.fraud_type), dtype=np.int64),
                "fraud_type": cr.fraud_type,
                "variant": cr.variant,
                "adapted_variant": cr.adapted_variant,
                "adapt_ts": np.asarray(cr.adapt_ts, dtype=np.int64),
                "size": np.asarray(cr.size, np.int64),
            },
            schema=TRUTH_TABLES["crews"],
        )
