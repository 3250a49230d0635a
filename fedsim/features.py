"""Point-in-time features per partner, from that partner's own tables only.

Scoring is event-triggered, as real monitoring works: each partner scores an entity at each of its
own events (a payment request at a bank, a call or text at a telco, a listing/message/order at a
marketplace). A decision row is (entity, ts) plus the attributes of the event under review; every
window feature uses only events with timestamp **strictly before** ts. Windows are answered with
one sorted int64 key per event (entity, ts) and ``searchsorted`` — no loop per event.

Cross-partner context (pooled and vertical regimes) asks another partner for its window features of
the matched entity *as of the same ts*, so joining never looks ahead either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthetic.population import AGE_BANDS
from synthetic.schema import partner_block
from synthetic.world import PartnerView, to_pandas

HOUR, DAY = 3600, 86_400
_TS_OFFSET = np.int64(1) << 33  # makes negative timestamps sortable inside the packed key
_ENTITY_SHIFT = np.int64(1) << 35


class EventIndex:
    """Events of one kind per entity, answering 'how many / how much in [t − w, t)' for many queries."""

    def __init__(
        self,
        entity: np.ndarray,
        ts: np.ndarray,
        values: dict[str, np.ndarray] | None = None,
        *,
        labels: dict[str, np.ndarray] | None = None,
    ) -> None:
        key = entity.astype(np.int64) * _ENTITY_SHIFT + (ts.astype(np.int64) + _TS_OFFSET)
        order = np.argsort(key, kind="stable")
        self.key = key[order]
        self.ts = ts.astype(np.int64)[order]
        self.entity = self.key // _ENTITY_SHIFT
        # Running sums restart at every entity: a window total then depends only on that entity's own earlier
        # events, bit for bit (one global running sum made it depend on other entities' rows through rounding).
        self.cum = {
            k: pd.Series(np.asarray(v, dtype=float)[order]).groupby(self.entity).cumsum().to_numpy()
            for k, v in (values or {}).items()
        }
        # per-event values read back as-is (not summed), e.g. which handset an activation used
        self.labels = {k: np.asarray(v)[order] for k, v in (labels or {}).items()}

    def _pos(self, entity: np.ndarray, ts: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.key, entity * _ENTITY_SHIFT + (ts + _TS_OFFSET), side="left")

    def count(self, entity: np.ndarray, ts: np.ndarray, window_s: int) -> np.ndarray:
        return (self._pos(entity, ts) - self._pos(entity, ts - window_s)).astype(float)

    def total(self, name: str, entity: np.ndarray, ts: np.ndarray, window_s: int) -> np.ndarray:
        return self._prefix(name, entity, self._pos(entity, ts)) - self._prefix(
            name, entity, self._pos(entity, ts - window_s)
        )

    def _prefix(self, name: str, entity: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Sum of `name` over the entity's events before position `pos` (0 when there are none)."""
        prev = np.maximum(pos - 1, 0)
        own = (pos > 0) & (self.entity[prev] == entity) if len(self.key) else np.zeros(len(pos), bool)
        return np.where(own, self.cum[name][prev] if len(self.key) else 0.0, 0.0)

    def _last(self, entity: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position of the entity's last event strictly before ts, and whether there is one."""
        p = self._pos(entity, ts) - 1
        ok = (p >= 0) & ((self.key[np.maximum(p, 0)] // _ENTITY_SHIFT) == entity)
        return np.maximum(p, 0), ok

    def since_last(self, entity: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Hours since the entity's last event strictly before ts (NaN: none)."""
        return (ts - self.last_ts(entity, ts)) / HOUR

    def last_ts(self, entity: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Time of the entity's last event strictly before ts (NaN: none)."""
        p, ok = self._last(entity, ts)
        return np.where(ok, self.ts[p], np.nan)

    def last_label(self, name: str, entity: np.ndarray, ts: np.ndarray, missing: int = -1) -> np.ndarray:
        """The `labels[name]` value of the entity's last event strictly before ts (`missing`: none)."""
        p, ok = self._last(entity, ts)
        return np.where(ok, self.labels[name][p], missing)


def _dense(ids: np.ndarray, universe: np.ndarray) -> np.ndarray:
    """Map entity ids to 0..n-1 positions in `universe` (sorted); -1 where unknown."""
    i = np.clip(np.searchsorted(universe, ids), 0, max(len(universe) - 1, 0))
    return np.where((len(universe) > 0) & (universe[i] == ids), i, -1) if len(universe) else np.full(len(ids), -1)


@dataclass
class DecisionRows:
    partner: str
    entity: np.ndarray  # partner entity ids
    ts: np.ndarray  # decision time (seconds)
    event: pd.DataFrame  # attributes of the event under review (known at decision time)

    @property
    def day(self) -> np.ndarray:
        return self.ts // DAY

    def select(self, mask: np.ndarray) -> DecisionRows:
        return DecisionRows(self.partner, self.entity[mask], self.ts[mask], self.event.loc[mask].reset_index(drop=True))


class PartnerFeatures:
    """Decision rows and as-of features for one partner, built from its own tables only."""

    kind: str = ""

    def __init__(self, view: PartnerView) -> None:
        self.view = view
        self.name = view.name
        self.tables = {k: to_pandas(t) for k, t in view.tables.items()}
        self.entities = np.sort(self.entity_ids())

    @staticmethod
    def for_view(view: PartnerView) -> PartnerFeatures:
        return {"bank": BankFeatures, "telco": TelcoFeatures, "marketplace": MarketFeatures, "signals": SignalFeatures}[
            view.kind
        ](view)

    @property
    def block(self) -> str:
        """Feature prefix: the partner kind; for signal partners the name without its number."""
        return partner_block(self.name)

    def entity_ids(self) -> np.ndarray:
        raise NotImplementedError

    def decision_rows(self) -> DecisionRows:
        raise NotImplementedError

    def context(self, entity: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
        """Window features of `entity` (this partner's ids, -1 = unknown → NaN) strictly before `ts`.

        Queries are answered in (entity, ts) order — ordered queries make every ``searchsorted``
        cache-friendly — and returned in the caller's order.
        """
        entity, ts = np.asarray(entity, dtype=np.int64), np.asarray(ts, dtype=np.int64)
        order = np.lexsort((ts, entity))
        frame = self._context(entity[order], ts[order])
        frame.index = order
        return frame.sort_index()

    def _context(self, entity: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
        raise NotImplementedError

    def window(self, start: int, end: int) -> tuple[DecisionRows, pd.DataFrame]:
        """Decision rows in [start, end) with their own features, computed once and kept: every regime
        and seed of an experiment scores the same test rows."""
        cache = self.__dict__.setdefault("_window_cache", {})
        if (start, end) not in cache:
            rows = self.decision_rows()
            rows = rows.select((rows.ts >= start) & (rows.ts < end))
            cache[(start, end)] = (rows, self.own(rows))
        return cache[(start, end)]

    def own(self, rows: DecisionRows) -> pd.DataFrame:
        """Features of the partner's own decision rows: event attributes + context."""
        ctx = self.context(rows.entity, rows.ts)
        return pd.concat([rows.event.add_prefix("ev_"), ctx], axis=1)

    def keys(self) -> pd.DataFrame:
        """entity_id plus the join keys this partner holds (phone_hash, email_hash, iban_hash …)."""
        raise NotImplementedError

    def _nan_unknown(self, frame: pd.DataFrame, dense: np.ndarray) -> pd.DataFrame:
        frame.loc[dense < 0, :] = np.nan
        return frame.add_prefix(f"{self.block}__")


# ----------------------------------------------------------------------------------------------------
class BankFeatures(PartnerFeatures):
    kind = "bank"

    def __init__(self, view: PartnerView) -> None:
        super().__init__(view)
        acc, tr, se = self.tables["accounts"], self.tables["transactions"], self.tables["sessions"]
        self.cust_of_acct = dict(zip(acc["account_id"].to_numpy(), acc["customer_id"].to_numpy(), strict=True))
        a_ids = acc["account_id"].to_numpy()
        a_order = np.argsort(a_ids)
        self._a_ids, self._a_cust = a_ids[a_order], acc["customer_id"].to_numpy()[a_order]
        self._a_opened = acc["opened_ts"].to_numpy()[a_order]
        tr = tr.assign(customer_id=self._a_cust[np.searchsorted(self._a_ids, tr["account_id"].to_numpy())])
        self.tr = tr
        ent = _dense(tr["customer_id"].to_numpy(), self.entities)
        ts = tr["ts"].to_numpy()
        out = (tr["direction"] == "out").to_numpy()
        kind = tr["kind"].to_numpy()
        amt = tr["amount_eur"].to_numpy()
        money_out = out & (kind != "own_transfer")
        self.out_idx = EventIndex(
            ent[money_out],
            ts[money_out],
            {
                "amount": amt[money_out],
                "new_payee": tr["new_payee"].to_numpy()[money_out],
                "mismatch": (tr["name_check"].to_numpy()[money_out] == "mismatch"),
                "cash": np.isin(kind[money_out], ["atm", "crypto"]),
            },
        )
        own = kind == "own_transfer"
        self.own_idx = EventIndex(ent[own], ts[own], {"amount": amt[own]})
        inc = ~out
        self.in_idx = EventIndex(ent[inc], ts[inc], {"amount": amt[inc]})
        sent = _dense(se["customer_id"].to_numpy(), self.entities)
        self.login_idx = EventIndex(
            sent,
            se["ts"].to_numpy(),
            {"new_device": se["new_device"].to_numpy(), "rat": se["remote_access_tool"].to_numpy()},
        )
        cu = self.tables["customers"].set_index("customer_id").loc[self.entities]
        self._age = cu["age_band"].map({b: i for i, b in enumerate(AGE_BANDS)}).to_numpy(dtype=float)
        self._since = cu["customer_since"].to_numpy()
        self._business = cu["is_business"].to_numpy().astype(float)
        # account openings per customer: the newest account *as of t* (mule accounts are often fresh; an
        # account opened after t must not count — it does not exist yet)
        self.opened_idx = EventIndex(_dense(self._a_cust, self.entities), self._a_opened)

    def entity_ids(self) -> np.ndarray:
        return self.tables["customers"]["customer_id"].to_numpy()

    def keys(self) -> pd.DataFrame:
        cu = self.tables["customers"][["customer_id", "phone_hash", "email_hash"]].rename(
            columns={"customer_id": "entity_id"}
        )
        ib = self.tables["accounts"][["customer_id", "iban_hash"]].rename(columns={"customer_id": "entity_id"})
        return cu.merge(ib, on="entity_id", how="left")

    def decision_rows(self) -> DecisionRows:
        tr = self.tr
        m = ((tr["direction"] == "out") & (tr["kind"] != "own_transfer")).to_numpy()
        t = tr.loc[m]
        acct_pos = np.searchsorted(self._a_ids, t["account_id"].to_numpy())
        ev = pd.DataFrame(
            {
                "amount": t["amount_eur"].to_numpy(),
                "log_amount": np.log1p(t["amount_eur"].to_numpy()),
                "new_payee": t["new_payee"].to_numpy(float),
                "mismatch": (t["name_check"] == "mismatch").to_numpy(float),
                "close": (t["name_check"] == "close").to_numpy(float),
                "instant": t["is_instant"].to_numpy(float),
                "cash": t["kind"].isin(["atm", "crypto"]).to_numpy(float),
                "other_bank": (t["counterparty_bank"] == "other").to_numpy(float),
                "account_age_d": (t["ts"].to_numpy() - self._a_opened[acct_pos]) / DAY,
                "cp_iban_hash": t["counterparty_iban_hash"].astype("float64").to_numpy(),  # dropped before modelling
            }
        )
        return DecisionRows(self.name, t["customer_id"].to_numpy(), t["ts"].to_numpy(), ev)

    def _context(self, entity: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
        e = _dense(entity, self.entities)
        o, i, lg, ow = self.out_idx, self.in_idx, self.login_idx, self.own_idx
        out_30 = o.count(e, ts, 30 * DAY)
        f = pd.DataFrame(
            {
                "out_n_1h": o.count(e, ts, HOUR),
                "out_n_24h": o.count(e, ts, DAY),
                "out_sum_24h": o.total("amount", e, ts, DAY),
                "new_payee_24h": o.total("new_payee", e, ts, DAY),
                "mismatch_24h": o.total("mismatch", e, ts, DAY),
                "cash_out_24h": o.total("cash", e, ts, DAY),
                "out_n_30d": out_30,
                "out_mean_30d": o.total("amount", e, ts, 30 * DAY) / np.maximum(out_30, 1),
                "own_transfer_sum_1h": ow.total("amount", e, ts, HOUR),
                "own_transfer_sum_24h": ow.total("amount", e, ts, DAY),
                "in_n_24h": i.count(e, ts, DAY),
                "in_sum_24h": i.total("amount", e, ts, DAY),
                "in_n_7d": i.count(e, ts, 7 * DAY),
                "in_sum_7d": i.total("amount", e, ts, 7 * DAY),
                "login_n_1h": lg.count(e, ts, HOUR),
                "new_device_1h": lg.total("new_device", e, ts, HOUR),
                "remote_access_1h": lg.total("rat", e, ts, HOUR),
                "new_device_7d": lg.total("new_device", e, ts, 7 * DAY),
                "hours_since_out": o.since_last(e, ts),
            }
        )
        ok = e >= 0
        ee = np.maximum(e, 0)
        f["age_band"] = np.where(ok, self._age[ee], np.nan)
        f["tenure_d"] = np.where(ok, (ts - self._since[ee]) / DAY, np.nan)
        # accounts opened at or before t exist at t (the payment under review may be the new account's first)
        f["newest_account_age_d"] = np.where(ok, (ts - self.opened_idx.last_ts(e, ts + 1)) / DAY, np.nan)
        f["business"] = np.where(ok, self._business[ee], np.nan)
        return self._nan_unknown(f, e)


class TelcoFeatures(PartnerFeatures):
    kind = "telco"

    def __init__(self, view: PartnerView) -> None:
        super().__init__(view)
        ca, si, sub = self.tables["calls"], self.tables["sim_events"], self.tables["subscribers"]
        self.calls = ca
        e = _dense(ca["subscriber_id"].to_numpy(), self.entities)
        ts = ca["ts"].to_numpy()
        inbound = (ca["direction"] == "in").to_numpy()
        sms = (ca["kind"] == "sms").to_numpy()
        self.in_idx = EventIndex(
            e[inbound],
            ts[inbound],
            {
                "mismatch": ca["caller_id_mismatch"].to_numpy()[inbound],
                "intl": (ca["origin"] == "international").to_numpy()[inbound],
                "sms": sms[inbound],
            },
        )
        ended = ts + ca["duration_s"].to_numpy()
        long_in = inbound & (ca["duration_s"].to_numpy() > 900)
        self.long_idx = EventIndex(e[long_in], ended[long_in])  # a call's length is known when it ends
        # Calls in progress right now: started in the last 4 h minus ended in the last 4 h (a telco knows
        # in real time that a line is busy, with whom and over which trunk — not yet how long it will last).
        voice_in = inbound & (ca["kind"] == "call").to_numpy()
        flags = {
            "mismatch": ca["caller_id_mismatch"].to_numpy()[voice_in],
            "intl": (ca["origin"] == "international").to_numpy()[voice_in],
        }
        self.call_start = EventIndex(e[voice_in], ts[voice_in], flags)
        self.call_end = EventIndex(e[voice_in], ended[voice_in], flags)
        self.out_idx = EventIndex(e[~inbound], ts[~inbound], {"sms": sms[~inbound]})
        se = _dense(si["subscriber_id"].to_numpy(), self.entities)
        self.sim_idx = EventIndex(
            se,
            si["ts"].to_numpy(),
            {"swap": si["event"].isin(["swap", "esim"]).to_numpy(), "activate": (si["event"] == "activate").to_numpy()},
        )
        # how many numbers were activated on the same handset before t (crews put many SIMs in one phone);
        # the subscriber's handset is the one of its latest activation *before t*, never a later one
        act = si[si["event"] == "activate"]
        handset_dense = pd.factorize(act["handset_hash"])[0]
        self.handset_idx = EventIndex(handset_dense, act["ts"].to_numpy())
        self.activation_idx = EventIndex(
            _dense(act["subscriber_id"].to_numpy(), self.entities),
            act["ts"].to_numpy(),
            labels={"handset": handset_dense},
        )
        s = sub.set_index("subscriber_id").loc[self.entities]
        self._activated = s["activated_ts"].to_numpy()
        self._prepaid = s["prepaid"].to_numpy().astype(float)
        self._anonymous = s["age_band"].isna().to_numpy().astype(float)
        ph = sub[["phone_hash", "activated_ts"]].sort_values("phone_hash")
        self._ph, self._ph_act = ph["phone_hash"].to_numpy(), ph["activated_ts"].to_numpy()

    def entity_ids(self) -> np.ndarray:
        return self.tables["subscribers"]["subscriber_id"].to_numpy()

    def keys(self) -> pd.DataFrame:
        return self.tables["subscribers"][["subscriber_id", "phone_hash"]].rename(
            columns={"subscriber_id": "entity_id"}
        )

    def decision_rows(self) -> DecisionRows:
        ca = self.calls
        other = ca["other_party_hash"].to_numpy()
        i = np.clip(np.searchsorted(self._ph, other), 0, len(self._ph) - 1)
        own_number = self._ph[i] == other
        ts = ca["ts"].to_numpy()
        ev = pd.DataFrame(
            {
                "inbound": (ca["direction"] == "in").to_numpy(float),
                "sms": (ca["kind"] == "sms").to_numpy(float),
                "international": (ca["origin"] == "international").to_numpy(float),
                "mismatch": ca["caller_id_mismatch"].to_numpy(float),
                "other_number_age_d": np.where(own_number, (ts - self._ph_act[i]) / DAY, np.nan),
                "other_hash": other.astype("float64"),  # dropped before modelling; used by the watchlist
            }
        )
        return DecisionRows(self.name, ca["subscriber_id"].to_numpy(), ts, ev)

    def _context(self, entity: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
        e = _dense(entity, self.entities)
        i, o, s = self.in_idx, self.out_idx, self.sim_idx
        ok, ee = e >= 0, np.maximum(e, 0)
        hs = np.where(ok, self.activation_idx.last_label("handset", e, ts), -1)
        f = pd.DataFrame(
            {
                "in_n_1h": i.count(e, ts, HOUR),
                "mismatch_1h": i.total("mismatch", e, ts, HOUR),
                "intl_1h": i.total("intl", e, ts, HOUR),
                "long_call_ended_1h": self.long_idx.count(e, ts, HOUR),
                "in_sms_24h": i.total("sms", e, ts, DAY),
                "out_n_1h": o.count(e, ts, HOUR),
                "out_sms_1h": o.total("sms", e, ts, HOUR),
                "out_sms_24h": o.total("sms", e, ts, DAY),
                "out_n_7d": o.count(e, ts, 7 * DAY),
                "sim_swap_7d": s.total("swap", e, ts, 7 * DAY),
                "handset_activations_30d": np.where(hs >= 0, self.handset_idx.count(hs, ts, 30 * DAY), 0.0),
            }
        )
        st, en, w = self.call_start, self.call_end, 4 * HOUR
        f["in_call_now"] = np.maximum(st.count(e, ts, w) - en.count(e, ts, w), 0)
        f["in_call_now_mismatch"] = np.maximum(st.total("mismatch", e, ts, w) - en.total("mismatch", e, ts, w), 0)
        f["in_call_now_international"] = np.maximum(st.total("intl", e, ts, w) - en.total("intl", e, ts, w), 0)
        f["number_age_d"] = np.where(ok, (ts - self._activated[ee]) / DAY, np.nan)
        f["prepaid"] = np.where(ok, self._prepaid[ee], np.nan)
        f["anonymous"] = np.where(ok, self._anonymous[ee], np.nan)
        return self._nan_unknown(f, e)


class MarketFeatures(PartnerFeatures):
    kind = "marketplace"

    def __init__(self, view: PartnerView) -> None:
        super().__init__(view)
        li, ms, od, rp, us = (self.tables[k] for k in ("listings", "messages", "orders", "reports", "users"))
        d = lambda col: _dense(col.to_numpy(), self.entities)  # noqa: E731
        self.list_idx = EventIndex(
            d(li["user_id"]),
            li["ts"].to_numpy(),
            {"cheap": (li["price_ratio"] < 0.65).to_numpy(), "reused": li["photos_reused"].to_numpy()},
        )
        self.msg_out = EventIndex(
            d(ms["from_user_id"]),
            ms["ts"].to_numpy(),
            {
                "off": ms["asks_off_platform"].to_numpy(),
                "iban": ms["contains_iban"].to_numpy(),
                "phone": ms["contains_phone"].to_numpy(),
            },
        )
        self.msg_in = EventIndex(
            d(ms["to_user_id"]),
            ms["ts"].to_numpy(),
            {"off": ms["asks_off_platform"].to_numpy(), "url": ms["contains_url"].to_numpy()},
        )
        self.sold = EventIndex(
            d(od["seller_user_id"]), od["ts"].to_numpy(), {"bank": (od["payment_method"] == "bank_transfer").to_numpy()}
        )
        self.bought = EventIndex(
            d(od["buyer_user_id"]), od["ts"].to_numpy(), {"bank": (od["payment_method"] == "bank_transfer").to_numpy()}
        )
        self.reported = EventIndex(d(rp["reported_user_id"]), rp["ts"].to_numpy())
        u = us.set_index("user_id").loc[self.entities]
        self._created = u["created_ts"].to_numpy()
        self._verified = u["phone_hash"].notna().to_numpy().astype(float)
        self._payout = u["payout_iban_hash"].notna().to_numpy().astype(float)
        # accounts sharing a device or payout IBAN, counted as of t by their creation times
        self.shared = {}
        for col in ("device_hash", "payout_iban_hash"):
            codes, _ = pd.factorize(u[col])
            self.shared[col] = (codes, EventIndex(codes[codes >= 0], self._created[codes >= 0]))

    def entity_ids(self) -> np.ndarray:
        return self.tables["users"]["user_id"].to_numpy()

    def keys(self) -> pd.DataFrame:
        return self.tables["users"][["user_id", "phone_hash", "email_hash", "payout_iban_hash"]].rename(
            columns={"user_id": "entity_id", "payout_iban_hash": "iban_hash"}
        )

    def decision_rows(self) -> DecisionRows:
        li, ms, od = self.tables["listings"], self.tables["messages"], self.tables["orders"]
        parts = [
            (
                li["user_id"],
                li["ts"],
                {"listing": 1.0, "price_ratio": li["price_ratio"], "reused": li["photos_reused"]},
            ),
            (
                ms["from_user_id"],
                ms["ts"],
                {"msg_out": 1.0, "off_platform": ms["asks_off_platform"], "iban": ms["contains_iban"]},
            ),
            (
                ms["to_user_id"],
                ms["ts"],
                {"msg_in": 1.0, "off_platform_in": ms["asks_off_platform"], "url_in": ms["contains_url"]},
            ),
            (od["seller_user_id"], od["ts"], {"sale": 1.0, "bank_transfer": od["payment_method"] == "bank_transfer"}),
            (
                od["buyer_user_id"],
                od["ts"],
                {"purchase": 1.0, "bank_transfer": od["payment_method"] == "bank_transfer"},
            ),
        ]
        cols = [
            "listing",
            "price_ratio",
            "reused",
            "msg_out",
            "off_platform",
            "iban",
            "msg_in",
            "off_platform_in",
            "url_in",
            "sale",
            "purchase",
            "bank_transfer",
        ]
        frames = []
        for ent, ts, attrs in parts:
            fr = pd.DataFrame({c: 0.0 for c in cols}, index=range(len(ent)))
            for k, v in attrs.items():
                fr[k] = np.asarray(v, dtype=float) if not np.isscalar(v) else v
            fr["price_ratio"] = fr["price_ratio"].where(fr["listing"] > 0, np.nan)
            fr["_entity"], fr["_ts"] = ent.to_numpy(), ts.to_numpy()
            frames.append(fr)
        allr = (
            pd.concat(frames, ignore_index=True).sort_values(["_ts", "_entity"], kind="stable").reset_index(drop=True)
        )
        ent, ts = allr.pop("_entity").to_numpy(), allr.pop("_ts").to_numpy()
        return DecisionRows(self.name, ent, ts, allr)

    def _context(self, entity: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
        e = _dense(entity, self.entities)
        ok, ee = e >= 0, np.maximum(e, 0)
        f = pd.DataFrame(
            {
                "listings_7d": self.list_idx.count(e, ts, 7 * DAY),
                "cheap_listings_7d": self.list_idx.total("cheap", e, ts, 7 * DAY),
                "reused_photos_7d": self.list_idx.total("reused", e, ts, 7 * DAY),
                "msg_out_24h": self.msg_out.count(e, ts, DAY),
                "off_platform_out_24h": self.msg_out.total("off", e, ts, DAY),
                "iban_out_24h": self.msg_out.total("iban", e, ts, DAY),
                "phone_out_24h": self.msg_out.total("phone", e, ts, DAY),
                "msg_in_24h": self.msg_in.count(e, ts, DAY),
                "off_platform_in_24h": self.msg_in.total("off", e, ts, DAY),
                "url_in_24h": self.msg_in.total("url", e, ts, DAY),
                "sold_7d": self.sold.count(e, ts, 7 * DAY),
                "sold_bank_transfer_7d": self.sold.total("bank", e, ts, 7 * DAY),
                "bought_bank_transfer_24h": self.bought.total("bank", e, ts, DAY),
                "reports_against": self.reported.count(e, ts, 40_000 * DAY),
            }
        )
        f["account_age_d"] = np.where(ok, (ts - self._created[ee]) / DAY, np.nan)
        f["phone_verified"] = np.where(ok, self._verified[ee], np.nan)
        f["has_payout_iban"] = np.where(ok, self._payout[ee], np.nan)
        for col, (codes, idx) in self.shared.items():
            c = np.where(ok, codes[ee], -1)
            f[f"{col.removesuffix('_hash')}_shared"] = np.where(
                c >= 0, np.maximum(idx.count(c, ts + 1, 40_000 * DAY) - 1, 0.0), 0.0
            )
        return self._nan_unknown(f, e)


class SignalFeatures(PartnerFeatures):
    """Known-answer / placebo partners: evidence rows that refer to a decision time."""

    kind = "signals"

    def __init__(self, view: PartnerView) -> None:
        super().__init__(view)
        sg = self.tables["signals"]
        e = _dense(sg["entity_id"].to_numpy(), self.entities)
        self.sig = EventIndex(e, sg["ts"].to_numpy(), {"x": sg["x"].to_numpy()})

    def entity_ids(self) -> np.ndarray:
        return self.tables["entities"]["entity_id"].to_numpy()

    def keys(self) -> pd.DataFrame:
        return self.tables["entities"][["entity_id", "phone_hash"]]

    def decision_rows(self) -> DecisionRows:
        sg = self.tables["signals"]
        return DecisionRows(
            self.name, sg["entity_id"].to_numpy(), sg["ts"].to_numpy(), pd.DataFrame(index=range(len(sg)))
        )

    def _context(self, entity: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
        # A signal row is the evidence *for* its decision time, so the window includes ts itself.
        e = _dense(entity, self.entities)
        f = pd.DataFrame({"x": self.sig.total("x", e, ts + 1, 1), "n": self.sig.count(e, ts + 1, 1)})
        f["x"] = f["x"].where(f["n"] > 0, np.nan)
        return self._nan_unknown(f[["x"]], e)


MODEL_EXCLUDE = ("ev_cp_iban_hash", "ev_other_hash")
"""Identifier columns carried for the watchlist; never model inputs."""
