"""The panel's columns, the history windows of the features and the feature sets' names.

Every window counts snapshot times of the panel (the current one included), not a coin's
rows; :mod:`liquidity_core.features.build` computes the features these names stand for.
"""

from liquidity_core.store.schema import MEASURES

#: Columns every panel must have (see ``snapshots.load_snapshots``).
PANEL_COLUMNS = ("coin_id", "snapshot_ts", *MEASURES)

#: Windows (in snapshot times of the panel, the current one included) of the mean log
#: turnover. Every window is bounded by snapshot time: a coin missing from some snapshots
#: has fewer rows in it (see :mod:`liquidity_core.features.windows`).
MEAN_WINDOWS = (3, 7, 30)
#: Window of the return volatility (standard deviation of log price changes).
VOL_WINDOW = 7
#: The coin's long-run mean log turnover: over the last this many snapshot times. A
#: window rather than an expanding mean so that prediction, which reads a bounded history,
#: computes it exactly as training did (at a monthly cadence it covers ~5 years).
LONG_WINDOW = 60
#: Half-lives (in snapshot times) of the exponentially weighted means of log turnover;
#: the weights are cut at LONG_WINDOW snapshot times and renormalized.
EWM_HALFLIVES = (2, 8, 24)
#: Window (snapshots) of the mean absolute change of log turnover.
ABS_WINDOW = 7
#: Snapshot times over which the market's median log turnover change is taken.
MARKET_CHANGE_LAG = 7
#: The most history any feature looks at, in snapshot times (the current one included):
#: predicting needs the newest this many snapshot times. A coin's previous row further
#: back than that is not used (its change, return and gap are NaN).
HISTORY_ROWS = max(*MEAN_WINDOWS, VOL_WINDOW + 1, LONG_WINDOW)
#: A cadence is daily when the time since the coin's previous snapshot is at most this.
DAILY_GAP_DAYS = 1.5

#: Turnover below this is floored before the log, so a zero volume stays finite.
TURNOVER_FLOOR = 1e-9

#: The feature set of the first published models (kept for comparison, see bench/skill).
V1_FEATURES = [
    "log_price",
    "change_1h",
    "change_24h",
    "change_7d",
    "log_volume",
    "log_market_cap",
    "log_turnover",
    "log_turnover_diff",
    *[f"log_turnover_mean_{w}" for w in MEAN_WINDOWS],
    "return_1",
    f"volatility_{VOL_WINDOW}",
    "mcap_rank",
    "snapshots_seen",
]

#: Cross-sectional features: computed from every coin at the snapshot time (and the
#: market's earlier snapshot times). Prediction fills them from the stored history.
MARKET_FEATURES = [
    "market_log_turnover",
    "market_log_turnover_change",
    "market_abs_return",
    "market_log_market_cap",
]

BASE_FEATURES = [
    *V1_FEATURES,
    # memory
    f"log_turnover_mean_{LONG_WINDOW}",
    *[f"log_turnover_ewm_{h}" for h in EWM_HALFLIVES],
    "log_turnover_dev_long",
    # market-wide components and the coin against them
    *MARKET_FEATURES,
    "log_turnover_dev_market",
    "log_mcap_rel",
    # volatility proxies
    "abs_log_turnover_diff",
    f"abs_log_turnover_diff_mean_{ABS_WINDOW}",
    "abs_return_1",
    "abs_change_24h",
    # cadence and calendar
    "gap_days",
    "target_weekday",
]

#: Features built (and stored, and read by the anchor, the intervals' buckets and the
#: report) but left out of the forest's input: each carried nothing on the CV folds of
#: every dev panel at two seeds, and leaving these seven out together cost no holdout
#: skill on any dev panel at three forest seeds (docs/model.md, "Features that carry
#: nothing", reviewed 2026-12-07 with ``python -m bench.features``). ``snapshots_seen``
#: carried nothing on the folds too, but leaving it out cost monthly_dev's holdout 0.008-
#: 0.010 skill at each seed, so the forest keeps it; ``log_turnover_mean_60`` stays too.
LEFT_OUT_OF_FOREST = (
    "change_1h",
    "log_market_cap",
    "log_mcap_rel",
    "mcap_rank",
    "gap_days",
    "log_turnover_ewm_2",
    "log_turnover_ewm_8",
)
