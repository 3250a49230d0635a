"""Hidden world → partner views: each partner gets only its own customers and its own events.

Join keys are salted hashes with partner-specific coverage and noise (stale numbers, a household's
shared number, typos, e-mail aliases). Whether a key is present is drawn independently of any
label. Local ids are fresh pseudonyms per partner. Rows injected by a case are traced in
``truth/provenance`` and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from synthetic.config import WorldConfig
from synthetic.fraud.common import FraudContext, MarketAccounts
from synthetic.ids import Keys, id_pool, rng_for
from synthetic.population import AGE_BANDS, OTHER, Population, age_band
from synthetic.schema import BANK_TABLES, DAY, HOUR, MARKETPLACE_TABLES, TELCO_TABLES, partner_names
from synthetic.truth import TruthBuilder, ViewTrace, merged_cases
from synthetic.world_data import PartnerView

FOREIGN = -3
_TYPO = np.int64(1 << 55)  # a mangled key is a different raw value → a hash that matches nothing
_ALIAS = np.int64(1 << 56)
_NONE = np.asarray(None, dtype=object)  # null in an object column


_Lookup = Callable[[np.ndarray], np.ndarray]  # raw phone number → this telco's subscriber id (-1: not ours)

__all__ = ["ViewBuilder", "partner_names"]  # partner_names: re-exported for existing importers


def _pool_ids(rng: np.random.Generator, partner: str, table: str, n: int) -> np.ndarray:
    """Local ids of ``n`` new rows of a partner's table: the world's shuffled pool (:func:`id_pool`)."""
    return id_pool(rng, n)


class ViewBuilder:
    def __init__(
        self,
        config: WorldConfig,
        seed: int,
        pop: Population,
        market: MarketAccounts,
        ctx: FraudContext,
        ledger: dict[str, dict[str, np.ndarray]],
        *,
        keys: Keys | None = None,
    ) -> None:
        self.config, self.seed, self.pop, self.market, self.ctx, self.led = config, seed, pop, market, ctx, ledger
        # A world with a secret brings its keyed join keys; otherwise the salt comes from the seed (reproducible).
        self.keys = keys if keys is not None else Keys(int(rng_for(seed, "salt").integers(1, 1 << 62)))
        self.partners: dict[str, PartnerView] = {}
        self.trace = ViewTrace()  # what the truth tables need to know about the views being built
        self.cases = merged_cases(ctx)
        self.bank_names = partner_names("bank", config.partners.banks)
        self.telco_names = partner_names("telco", config.partners.telcos)
        self.market_names = partner_names("marketplace", config.partners.marketplaces)
        self._phone_operator = self._operator_lookup()
        self._phone_index = pd.Index(self._phone_operator[0])  # hash lookup of raw numbers
        # Per partner, what its event tables need (kept so that person blocks can build them from their ledger).
        self.acct_ids: dict[str, np.ndarray] = {}
        self.telco_phones: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.local_ids: Callable[[np.random.Generator, str, str, int], np.ndarray] = _pool_ids

    # -------------------------------------------------------------------------------- helpers
    def _operator_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        pop, ctx = self.pop, self.ctx
        raw = np.concatenate(
            [
                pop.phone,
                np.fromiter(ctx.burner_telco.keys(), np.int64, len(ctx.burner_telco)),
                pop.bank_numbers,
                pop.foreign_numbers,
            ]
        )
        op = np.concatenate(
            [
                pop.telco,
                np.fromiter(ctx.burner_telco.values(), np.int64, len(ctx.burner_telco)),
                np.full(len(pop.bank_numbers), OTHER),
                np.full(len(pop.foreign_numbers), FOREIGN),
            ]
        )
        order = np.argsort(raw)
        return raw[order], op[order]

    def operator(self, phone: np.ndarray) -> np.ndarray:
        """Operator of each raw number (hash lookup: the queries are millions of unsorted call ends)."""
        _, op = self._phone_operator
        i = self._phone_index.get_indexer(phone)
        return np.where(i >= 0, op[np.maximum(i, 0)], OTHER)

    def _noisy_key(
        self,
        rng: np.random.Generator,
        raw: np.ndarray,
        *,
        coverage: float,
        alt: np.ndarray | None,
        alt_rate: float,
        typo_rate: float,
    ) -> pa.Array:
        """Hash with coverage and noise; null where the partner does not hold the key."""
        n = len(raw)
        value = raw.copy()
        if alt is not None:
            use_alt = rng.random(n) < alt_rate
            value = np.where(use_alt, alt, value)
        value = np.where(rng.random(n) < typo_rate, value ^ _TYPO, value)
        present = (rng.random(n) < coverage) & (raw >= 0)
        return pa.array(value, mask=~present)

    def _entities(self, partner: str, n_local: int, rng: np.random.Generator) -> np.ndarray:
        return id_pool(rng, n_local)

    # -------------------------------------------------------------------------------- banks
    def build_banks(self) -> None:
        pop, acc, keys, kc = self.pop, self.pop.accounts, self.keys, self.config.keys
        for b, name in enumerate(self.bank_names):
            rng = rng_for(self.seed, "view", name)
            own = (acc.bank == b) & (acc.owner >= 0)
            persons = np.unique(acc.owner[own])
            cust = self._entities(name, len(persons), rng)
            person_to_cust = np.full(pop.n, -1, dtype=np.int64)
            person_to_cust[persons] = cust
            self.trace.person_entity[name] = person_to_cust
            self.trace.register(name, cust, persons, self.pop)
            order = np.argsort(cust)
            p_sorted = persons[order]
            customers = pa.table(
                {
                    "customer_id": cust[order],
                    "age_band": age_band(pop.age[p_sorted]).astype(object, copy=False),
                    "region": pop.region[p_sorted].astype(object, copy=False),
                    "customer_since": pop.customer_since[p_sorted],
                    "is_business": pop.business_acct[p_sorted] >= 0,
                    "phone_hash": self._noisy_key(
                        rng,
                        keys.phone(pop.phone[p_sorted]),
                        coverage=kc.phone_coverage,
                        alt=self._phone_noise(rng, p_sorted),
                        alt_rate=kc.stale_phone_rate + kc.household_phone_rate,
                        typo_rate=kc.format_error_rate,
                    ),
                    "email_hash": self._noisy_key(
                        rng,
                        keys.email(pop.email[p_sorted]),
                        coverage=kc.email_coverage,
                        alt=keys.email(pop.email[p_sorted] ^ _ALIAS),
                        alt_rate=kc.email_alias_rate,
                        typo_rate=kc.format_error_rate,
                    ),
                },
                schema=BANK_TABLES["customers"],
            )
            rows = np.flatnonzero(own)
            acct_id = np.full(len(acc.iban), -1, dtype=np.int64)
            acct_id[rows] = id_pool(rng, len(rows))
            order = np.argsort(acct_id[rows])
            r = rows[order]
            accounts = pa.table(
                {
                    "account_id": acct_id[r],
                    "customer_id": person_to_cust[acc.owner[r]],
                    "iban_hash": keys.iban(acc.iban[r]),
                    "product": acc.product[r].astype(object, copy=False),
                    "opened_ts": acc.opened_ts[r],
                    "daily_limit_eur": acc.daily_limit[r],
                },
                schema=BANK_TABLES["accounts"],
            )
            self.acct_ids[name] = acct_id
            events = self.bank_events(b, name)
            reports = self._bank_reports(b, person_to_cust)
            self.partners[name] = PartnerView(
                name,
                "bank",
                {
                    "customers": customers,
                    "accounts": accounts,
                    **events,
                    "reports": reports,
                },
            )

    def bank_events(self, b: int, name: str) -> dict[str, pa.Table]:
        """A bank's event tables (transactions, sessions) of the ledger ``self.led``, after :meth:`build_banks`."""
        return {
            "transactions": self._bank_transactions(b, name, self.led["transfers"], self.acct_ids[name]),
            "sessions": self._bank_sessions(b, name, self.trace.person_entity[name]),
        }

    def _phone_noise(self, rng: np.random.Generator, persons: np.ndarray) -> np.ndarray:
        """The wrong-but-plausible number a partner may hold: an old number or the household's shared one."""
        kc = self.config.keys
        share_stale = kc.stale_phone_rate / max(kc.stale_phone_rate + kc.household_phone_rate, 1e-12)
        stale = rng.random(len(persons)) < share_stale
        hh = self.pop.phone[self.pop.contacts[persons, 0]]
        return self.keys.phone(np.where(stale, self.pop.old_phone[persons], hh))

    def _bank_transactions(self, b: int, name: str, tr: dict[str, np.ndarray], acct_id: np.ndarray) -> pa.Table:
        acc = self.pop.accounts
        frm, to = tr["from_acct"], tr["to_acct"]
        bank_from = np.where(frm >= 0, acc.bank[np.maximum(frm, 0)], OTHER)
        bank_to = np.where(to >= 0, acc.bank[np.maximum(to, 0)], OTHER)
        person_from = (frm >= 0) & (acc.owner[np.maximum(frm, 0)] >= 0)
        person_to = (to >= 0) & (acc.owner[np.maximum(to, 0)] >= 0)
        out_rows = np.flatnonzero((bank_from == b) & person_from)
        in_rows = np.flatnonzero((bank_to == b) & person_to & (tr["kind"] != "own_transfer"))
        rows = np.concatenate([out_rows, in_rows])
        direction = np.concatenate(
            [np.full(len(out_rows), "out", dtype=object), np.full(len(in_rows), "in", dtype=object)]
        )
        order = np.lexsort((direction == "in", rows))  # ledger order = time order; out before in
        rows, direction = rows[order], direction[order]
        is_out = direction == "out"
        own_acct = np.where(is_out, frm[rows], to[rows])
        other = np.where(is_out, to[rows], frm[rows])
        other_bank = np.where(is_out, bank_to[rows], bank_from[rows])
        names = np.asarray([*self.bank_names, "other"], dtype=object)
        cp_bank = np.where(other >= 0, names[np.where(other_bank >= 0, other_bank, len(self.bank_names))], _NONE)
        table = pa.table(
            {
                "ts": tr["ts"][rows],
                "account_id": acct_id[own_acct],
                "direction": direction.astype(object, copy=False),
                "kind": tr["kind"][rows].astype(object, copy=False),
                "counterparty_iban_hash": pa.array(self.keys.iban(acc.iban[np.maximum(other, 0)]), mask=other < 0),
                "counterparty_bank": pa.array(cp_bank, type=pa.string()),
                "amount_eur": tr["amount"][rows].astype(float),
                "channel": tr["channel"][rows].astype(object, copy=False),
                "is_instant": tr["is_instant"][rows].astype(bool),
                "new_payee": is_out & tr["new_payee"][rows].astype(bool),
                "name_check": np.where(is_out, tr["name_check"][rows], "none").astype(object, copy=False),
            },
            schema=BANK_TABLES["transactions"],
        )
        self.trace.record(name, "transactions", tr["case_id"][rows], tr["phase"][rows])
        return table

    def _bank_sessions(self, b: int, name: str, person_to_cust: np.ndarray) -> pa.Table:
        lg = self.led["logins"]
        rows = np.flatnonzero(self.pop.bank[lg["person"]] == b)
        self.trace.record(name, "sessions", lg["case_id"][rows], lg["phase"][rows])
        return pa.table(
            {
                "ts": lg["ts"][rows],
                "customer_id": person_to_cust[lg["person"][rows]],
                "device_hash": self.keys.device(lg["device"][rows]),
                "new_device": lg["new_device"][rows].astype(bool),
                "remote_access_tool": lg["remote_access"][rows].astype(bool),
            },
            schema=BANK_TABLES["sessions"],
        )

    def _bank_reports(self, b: int, person_to_cust: np.ndarray) -> pa.Table:
        c = self.cases
        victim_bank = self.pop.bank[c["victim"]]
        rows = np.flatnonzero(c["reported"] & (victim_bank == b))
        rows = rows[np.argsort(c["report_ts"][rows], kind="stable")]
        mule = c["mule_acct"][rows]
        return pa.table(
            {
                "ts": c["report_ts"][rows],
                "customer_id": person_to_cust[c["victim"][rows]],
                "reported_iban_hash": pa.array(
                    self.keys.iban(self.pop.accounts.iban[np.maximum(mule, 0)]), mask=mule < 0
                ),
                "fraud_type": c["fraud_type"][rows].astype(object, copy=False),
                "amount_eur": c["loss_eur"][rows],
            },
            schema=BANK_TABLES["reports"],
        )

    # -------------------------------------------------------------------------------- telcos
    def build_telcos(self) -> None:
        pop, keys = self.pop, self.keys
        sims = self.led["sims"]
        burners = np.fromiter(self.ctx.burner_telco.keys(), np.int64, len(self.ctx.burner_telco))
        burner_op = np.fromiter(self.ctx.burner_telco.values(), np.int64, len(self.ctx.burner_telco))
        for t, name in enumerate(self.telco_names):
            rng = rng_for(self.seed, "view", name)
            persons = np.flatnonzero(pop.telco == t)
            mine_b = burners[burner_op == t]
            phones = np.concatenate([pop.phone[persons], mine_b])
            owner = np.concatenate([persons, np.full(len(mine_b), -1)])
            sub = id_pool(rng, len(phones))
            self.trace.register(name, sub, owner, self.pop)
            self.trace.person_entity[name] = np.full(pop.n, -1, dtype=np.int64)
            self.trace.person_entity[name][persons] = sub[: len(persons)]
            lookup_order = np.argsort(phones)
            self.telco_phones[name] = (phones[lookup_order], sub[lookup_order])
            activated = self._burner_activation(mine_b, sims, rng)
            prepaid = np.concatenate([pop.prepaid[persons], np.ones(len(mine_b), bool)])
            band = np.concatenate([age_band(pop.age[persons]), np.full(len(mine_b), AGE_BANDS[0], dtype=object)])
            anonymous = prepaid & (rng.random(len(phones)) < 0.6)
            order = np.argsort(sub)
            subscribers = pa.table(
                {
                    "subscriber_id": sub[order],
                    "phone_hash": keys.phone(phones[order]),
                    "prepaid": prepaid[order],
                    "activated_ts": np.concatenate([pop.phone_since[persons], activated])[order],
                    "age_band": pa.array(band[order].astype(object, copy=False), mask=anonymous[order]),
                },
                schema=TELCO_TABLES["subscribers"],
            )
            events = self.telco_events(t, name)
            self.partners[name] = PartnerView(
                name,
                "telco",
                {
                    "subscribers": subscribers,
                    "sim_events": events["sim_events"],
                    "calls": events["calls"],
                    "flagged_numbers": self._telco_flags(t),
                },
            )

    def telco_events(self, t: int, name: str) -> dict[str, pa.Table]:
        """A telco's event tables (sim_events, calls) of the ledger ``self.led``, after :meth:`build_telcos`."""
        sims, calls = self.led["sims"], self.led["calls"]
        sorted_phones, sorted_sub = self.telco_phones[name]

        def lookup(raw: np.ndarray, _p: np.ndarray = sorted_phones, _s: np.ndarray = sorted_sub) -> np.ndarray:
            i = np.clip(np.searchsorted(_p, raw), 0, len(_p) - 1)
            return np.where(_p[i] == raw, _s[i], -1)

        srows = np.flatnonzero(lookup(sims["phone"]) >= 0)
        self.trace.record(name, "sim_events", sims["case_id"][srows], sims["phase"][srows])
        sim_events = pa.table(
            {
                "ts": sims["ts"][srows],
                "subscriber_id": lookup(sims["phone"][srows]),
                "event": sims["event"][srows].astype(object, copy=False),
                "handset_hash": self.keys.handset(sims["handset"][srows]),
            },
            schema=TELCO_TABLES["sim_events"],
        )
        return {"sim_events": sim_events, "calls": self._telco_calls(t, name, calls, lookup)}

    def _burner_activation(
        self, burners: np.ndarray, sims: dict[str, np.ndarray], rng: np.random.Generator
    ) -> np.ndarray:
        act = sims["event"] == "activate"
        raw, ts = sims["phone"][act], sims["ts"][act]
        out = -rng.integers(30 * DAY, 400 * DAY, len(burners))
        if len(raw):
            order = np.argsort(raw, kind="stable")
            raw_s, ts_s = raw[order], ts[order]
            i = np.clip(np.searchsorted(raw_s, burners), 0, len(raw_s) - 1)
            out = np.where(raw_s[i] == burners, ts_s[i], out)
        return out

    def _telco_calls(self, t: int, name: str, calls: dict[str, np.ndarray], lookup: _Lookup) -> pa.Table:
        keys = self.keys
        op_from, op_to = self.operator(calls["from_phone"]), self.operator(calls["to_phone"])
        in_rows = np.flatnonzero(op_to == t)
        out_rows = np.flatnonzero((op_from == t) & ~calls["intl"].astype(bool))
        rows = np.concatenate([in_rows, out_rows])
        inbound = np.concatenate([np.ones(len(in_rows), bool), np.zeros(len(out_rows), bool)])
        order = np.lexsort((~inbound, rows))
        rows, inbound = rows[order], inbound[order]
        intl = calls["intl"][rows].astype(bool)
        other_op = np.where(inbound, op_from[rows], op_to[rows])
        origin = np.where(
            inbound & intl,
            "international",
            np.where(other_op == t, "on_net", np.where(other_op == FOREIGN, "international", "off_net")),
        )
        presented = np.where(inbound, calls["presented"][rows], calls["from_phone"][rows])
        domestic_presented = self.operator(presented) != FOREIGN
        self.trace.record(name, "calls", calls["case_id"][rows], calls["phase"][rows])
        return pa.table(
            {
                "ts": calls["ts"][rows],
                "subscriber_id": np.where(inbound, lookup(calls["to_phone"][rows]), lookup(calls["from_phone"][rows])),
                "direction": np.where(inbound, "in", "out").astype(object, copy=False),
                "kind": calls["kind"][rows].astype(object, copy=False),
                "other_party_hash": keys.phone(np.where(inbound, calls["from_phone"][rows], calls["to_phone"][rows])),
                "presented_caller_id_hash": keys.phone(presented),
                "origin": origin.astype(object, copy=False),
                "caller_id_mismatch": inbound & intl & domestic_presented,
                "duration_s": calls["duration"][rows].astype(np.int64),
            },
            schema=TELCO_TABLES["calls"],
        )

    def _telco_flags(self, t: int) -> pa.Table:
        c = self.cases
        victim_telco = self.pop.telco[c["victim"]]
        rows = np.flatnonzero(c["reported"] & (victim_telco == t) & (c["burner"] >= 0))
        ts = c["report_ts"][rows] + 12 * HOUR
        order = np.argsort(ts, kind="stable")
        return pa.table(
            {"ts": ts[order], "phone_hash": self.keys.phone(c["burner"][rows][order])},
            schema=TELCO_TABLES["flagged_numbers"],
        )

    # -------------------------------------------------------------------------------- marketplaces
    def build_marketplaces(self) -> None:
        m_acc, pop, keys, kc = self.market, self.pop, self.keys, self.config.keys
        for m, name in enumerate(self.market_names):
            rng = rng_for(self.seed, "view", name)
            rows = np.flatnonzero((m_acc.market == m) & (m_acc.raw >= 0))
            uid = np.full(len(m_acc.raw), -1, dtype=np.int64)
            uid[rows] = id_pool(rng, len(rows))
            owner = np.where(rows < pop.n, rows, -1)
            owner = np.where(m_acc.owner[rows] >= 0, m_acc.owner[rows], owner)
            self.trace.register(name, uid[rows], owner, self.pop)
            self.trace.person_entity[name] = np.full(pop.n, -1, dtype=np.int64)
            person_rows = rows[rows < pop.n]
            self.trace.person_entity[name][person_rows] = uid[person_rows]
            self.trace.market_uid[name] = uid
            is_person = rows < pop.n
            phone_raw = np.where(is_person, pop.phone[np.minimum(rows, pop.n - 1)], m_acc.phone[rows])
            payout = m_acc.payout_acct[rows]
            payout_cov = np.where(is_person, kc.payout_iban_coverage, 1.0)
            payout_present = (payout >= 0) & (rng.random(len(rows)) < payout_cov)
            order = np.argsort(uid[rows])
            r = rows[order]
            users = pa.table(
                {
                    "user_id": uid[r],
                    "created_ts": m_acc.created_ts[r],
                    "phone_hash": self._noisy_key(
                        rng,
                        np.where(phone_raw >= 0, keys.phone(phone_raw), -1)[order],
                        coverage=0.8,
                        alt=None,
                        alt_rate=0.0,
                        typo_rate=kc.format_error_rate,
                    ),
                    "email_hash": self._noisy_key(
                        rng,
                        keys.email(m_acc.email[r]),
                        coverage=1.0,
                        alt=keys.email(m_acc.email[r] ^ _ALIAS),
                        alt_rate=kc.email_alias_rate,
                        typo_rate=0.0,
                    ),
                    "payout_iban_hash": pa.array(
                        keys.iban(pop.accounts.iban[np.maximum(payout[order], 0)]), mask=~payout_present[order]
                    ),
                    "device_hash": keys.device(m_acc.device[r]),
                },
                schema=MARKETPLACE_TABLES["users"],
            )
            events = self.market_events(m, name, rng)
            self.partners[name] = PartnerView(
                name,
                "marketplace",
                {"users": users, **events, "reports": self._market_reports(m, uid, rng)},
            )

    def market_events(self, m: int, name: str, rng: np.random.Generator) -> dict[str, pa.Table]:
        """A marketplace's event tables (listings, messages, orders) of ``self.led``, after its users exist."""
        uid = self.trace.market_uid[name]
        mk = self.market.market
        li, ms, od = self.led["listings"], self.led["messages"], self.led["orders"]
        lr = np.flatnonzero(mk[li["user"]] == m)
        mr = np.flatnonzero((mk[ms["from_user"]] == m) & (mk[ms["to_user"]] == m))
        orr = np.flatnonzero((mk[od["buyer"]] == m) & (mk[od["seller"]] == m))
        for table, d, r in (("listings", li, lr), ("messages", ms, mr), ("orders", od, orr)):
            self.trace.record(name, table, d["case_id"][r], d["phase"][r])
        listings = pa.table(
            {
                "ts": li["ts"][lr],
                "listing_id": self.local_ids(rng, name, "listings", len(lr)),
                "user_id": uid[li["user"][lr]],
                "category": li["category"][lr].astype(object, copy=False),
                "price_eur": li["price"][lr].astype(float),
                "price_ratio": li["ratio"][lr].astype(float),
                "photos_reused": li["photos_reused"][lr].astype(bool),
            },
            schema=MARKETPLACE_TABLES["listings"],
        )
        messages = pa.table(
            {
                "ts": ms["ts"][mr],
                "from_user_id": uid[ms["from_user"][mr]],
                "to_user_id": uid[ms["to_user"][mr]],
                **{
                    c: ms[k][mr].astype(bool)
                    for c, k in (
                        ("contains_phone", "contains_phone"),
                        ("contains_iban", "contains_iban"),
                        ("contains_url", "contains_url"),
                        ("asks_off_platform", "off_platform"),
                    )
                },
            },
            schema=MARKETPLACE_TABLES["messages"],
        )
        label, deliv = od["label_ts"][orr].astype(np.int64), od["delivered_ts"][orr].astype(np.int64)
        orders = pa.table(
            {
                "ts": od["ts"][orr],
                "order_id": self.local_ids(rng, name, "orders", len(orr)),
                "buyer_user_id": uid[od["buyer"][orr]],
                "seller_user_id": uid[od["seller"][orr]],
                "amount_eur": od["amount"][orr].astype(float),
                "payment_method": od["method"][orr].astype(object, copy=False),
                "shipping_label_ts": pa.array(label, mask=label < 0),
                "delivered_ts": pa.array(deliv, mask=deliv < 0),
            },
            schema=MARKETPLACE_TABLES["orders"],
        )
        return {"listings": listings, "messages": messages, "orders": orders}

    def _market_reports(self, m: int, uid: np.ndarray, rng: np.random.Generator) -> pa.Table:
        c = self.cases
        mk = self.market.market
        fake = c["fake_user"]
        rows = np.flatnonzero(c["reported"] & (fake >= 0) & (mk[np.maximum(fake, 0)] == m) & (mk[c["victim"]] == m))
        reason = np.where(c["fraud_type"][rows] == "purchase", "non_delivery", "fake_payment").astype(object)
        # Look-alike: honest users get reported too (disputes, misunderstandings).
        users = np.flatnonzero(mk[: self.pop.n] == m)
        n_false = int(rng.poisson(len(users) * 0.004 * self.config.population.days / 365))
        reporter, reported = rng.choice(users, n_false), rng.choice(users, n_false)
        ts = np.concatenate([c["report_ts"][rows], rng.integers(0, self.config.population.days * DAY, n_false)])
        order = np.argsort(ts, kind="stable")
        return pa.table(
            {
                "ts": ts[order],
                "reporter_user_id": np.concatenate([uid[c["victim"][rows]], uid[reporter]])[order],
                "reported_user_id": np.concatenate([uid[fake[rows]], uid[reported]])[order],
                "reason": np.concatenate([reason, np.full(n_false, "other", dtype=object)])[order].astype(
                    object, copy=False
                ),
            },
            schema=MARKETPLACE_TABLES["reports"],
        )

    # -------------------------------------------------------------------------------- truth
    def truth_tables(self) -> dict[str, pa.Table]:
        """The hidden truth of the views built so far (:mod:`synthetic.truth`)."""
        builder = TruthBuilder(self.config, self.pop, self.ctx, self.cases, self.keys, self.trace)
        return builder.tables(self.partners)
