"""The reference the split-learning tests compare against: the same split network trained centrally.

Test-only (moved out of :mod:`fedsim.regimes.vertical`, which never calls it): the holder's rows with the
parties' columns joined in the clear by the one join rule (:func:`fedsim.alignment.plain_pairs`, the rule
PSI alignment realises), the same seed, batches and optimiser as a vertical run. Split learning only moves
where each part of the network is computed (Vepakomma et al. 2018, "Split learning for health: distributed
deep learning without sharing raw patient data"), so the two must agree up to float rounding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedsim import alignment
from fedsim.models import Standardizer, make_split_net
from fedsim.regimes.base import RegimeResult, RunContext
from fedsim.regimes.vertical import HIDDEN, holder_data
from fedsim.rows import entity_days
from fedsim.training import TrainConfig, fit, predict_scores


def central_split_scores(ctx: RunContext, holder: str, parties: tuple[str, ...]) -> pd.DataFrame:
    """Event scores (partner, entity_id, decision_ts, window, score) of a :class:`~fedsim.models.SplitNet`
    trained centrally by :func:`fedsim.training.fit` on the holder's rows with the parties' columns
    joined in the clear — same rows, same alignment rule, same seed, same batches as the vertical run.
    A row whose person a party does not hold gets that party's columns all missing (as in the protocol)."""
    data = holder_data(ctx, holder)
    blocks_train, blocks_test = [data.x_train], [data.x_test]
    for p in parties:
        pairs = alignment.plain_pairs(data.keys, ctx.features[p].keys())
        match = pairs.set_index("holder_entity")["party_entity"]
        for ent, ts, out in (
            (data.entity_train, data.ts_train, blocks_train),
            (data.entity_test, data.ts_test, blocks_test),
        ):
            e = match.reindex(ent).fillna(-1).to_numpy(np.int64)
            out.append(ctx.features[p].context(e, ts).to_numpy(float))
    stds = [Standardizer().fit(b) for b in blocks_train]
    x_train = np.hstack([s.transform(b) for s, b in zip(stds, blocks_train, strict=True)])
    x_test = np.hstack([s.transform(b) for s, b in zip(stds, blocks_test, strict=True)])
    net = make_split_net(
        [s.n_features_out_ for s in stds],
        embedding_dim=ctx.federation.embedding_dim,
        hidden=HIDDEN,
        seed=ctx.seed,
    )
    cfg = TrainConfig(
        epochs=ctx.federation.rounds * ctx.federation.local_epochs,
        batch_size=ctx.training.batch_size,
        learning_rate=ctx.training.learning_rate,
        seed=ctx.seed,
        class_weight="balanced",
    )
    fit(net, x_train, data.y_train.astype(np.float32), config=cfg, sample_weight=data.w_train)
    return pd.DataFrame(
        {
            "partner": holder,
            "entity_id": data.entity_test,
            "decision_ts": data.ts_test,
            "window": data.window_test,
            "score": predict_scores(net, x_test),
        }
    )


def scores_frame(scores: pd.DataFrame) -> RegimeResult:
    """Event scores with a ``window`` column → the regime result shape: entity-days of the test window
    (window 0) and, when present, of the second test window (window 1), as the vertical regime returns them."""
    first = entity_days(scores[scores["window"] == 0].drop(columns="window"))
    later = scores[scores["window"] == 1]
    second = entity_days(later.drop(columns="window")) if len(later) else None
    return RegimeResult(scores=first, params={}, metrics={}, second_scores=second)
