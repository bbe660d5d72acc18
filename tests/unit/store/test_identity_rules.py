"""The rename rule itself (identity.decide, pure): each condition at its limit."""

import pandas as pd
import pytest

from liquidity_core.store import identity


def day(d: int) -> str:
    return f"2024-01-{d:02d}T00:00:00+00:00"


TIMES = [day(d) for d in range(1, 11)]
NO_SHARED = pd.DataFrame({"snapshot_ts": [], "symbol": []})


def spans(*names):
    """One span per (coin_id, first_day, last_day, first_symbol, first_cap, last_symbol,
    last_cap)."""
    rows = [
        {
            "coin_id": c,
            "first_ts": day(f),
            "last_ts": day(la),
            "first_symbol": fs,
            "first_cap": fc,
            "last_symbol": ls,
            "last_cap": lc,
        }
        for c, f, la, fs, fc, ls, lc in names
    ]
    return pd.DataFrame(rows)


def aliases(frame, shared=NO_SHARED, times=TIMES, **kw):
    out = identity.decide(frame, times, shared, **kw)
    return dict(zip(out["alias_id"], out["coin_id"], strict=True))


def test_a_rename_links_the_new_name_to_the_old_with_its_record():
    out = identity.decide(
        spans(("old", 1, 4, "X", 1.0, "X", 10.0), ("new", 5, 9, "X", 12.0, "X", 1.0)),
        TIMES,
        NO_SHARED,
    )
    assert out.to_dict("records") == [
        {
            "alias_id": "new",
            "coin_id": "old",
            "previous_id": "old",
            "symbol": "X",
            "previous_last_ts": day(4),
            "alias_first_ts": day(5),
            "cap_ratio": pytest.approx(1.2),
        }
    ]


def test_no_spans_no_aliases():
    out = identity.decide(spans(), TIMES, NO_SHARED)
    assert out.empty and list(out.columns) == [*identity._DECISION, "cap_ratio"]


def test_the_new_name_must_start_at_the_very_next_snapshot():
    assert aliases(spans(("a", 1, 4, "X", 1.0, "X", 1.0), ("b", 6, 9, "X", 1.0, "X", 1.0))) == {}
    # Missing calendar days are no gap: the next stored snapshot counts.
    times = [day(d) for d in (1, 2, 3, 4, 7, 8)]
    got = aliases(
        spans(("a", 1, 4, "X", 1.0, "X", 1.0), ("b", 7, 8, "X", 1.0, "X", 1.0)), times=times
    )
    assert got == {"b": "a"}


def test_a_name_starting_at_the_first_snapshot_renames_nothing():
    assert aliases(spans(("a", 1, 1, "X", 1.0, "X", 1.0), ("b", 1, 9, "X", 1.0, "X", 1.0))) == {}


def test_a_name_seen_only_at_the_first_snapshot_can_be_renamed_at_the_second():
    assert aliases(spans(("a", 1, 1, "X", 1.0, "X", 1.0), ("b", 2, 9, "X", 1.0, "X", 1.0))) == {
        "b": "a"
    }


def test_the_symbol_must_be_the_same_at_both_ends():
    assert aliases(spans(("a", 1, 4, "X", 1.0, "Y", 1.0), ("b", 5, 9, "X", 1.0, "X", 1.0))) == {}
    got = aliases(spans(("a", 1, 4, "Y", 1.0, "X", 1.0), ("b", 5, 9, "X", 1.0, "Z", 1.0)))
    assert got == {"b": "a"}  # what counts is A's last symbol and B's first


@pytest.mark.parametrize(("ratio", "linked"), [(3.0, True), (3.01, False)])
def test_the_market_caps_may_differ_by_the_factor_either_way(ratio, linked):
    for a_cap, b_cap in [(1.0, ratio), (ratio, 1.0)]:
        got = aliases(spans(("a", 1, 4, "X", 9.0, "X", a_cap), ("b", 5, 9, "X", b_cap, "X", 9.0)))
        assert (got == {"b": "a"}) is linked
    got = aliases(
        spans(("a", 1, 4, "X", 1.0, "X", 1.0), ("b", 5, 9, "X", 1.9, "X", 1.0)), factor=2.0
    )
    assert got == {"b": "a"}
    got = aliases(
        spans(("a", 1, 4, "X", 1.0, "X", 1.0), ("b", 5, 9, "X", 2.1, "X", 1.0)), factor=2.0
    )
    assert got == {}


@pytest.mark.parametrize(
    "caps", [(0.0, 1.0), (1.0, 0.0), (0.0, 0.0), (-1.0, -1.0), (float("nan"), 1.0)]
)
def test_a_missing_or_zero_cap_is_no_link(caps):
    got = aliases(spans(("a", 1, 4, "X", 1.0, "X", caps[0]), ("b", 5, 9, "X", caps[1], "X", 1.0)))
    assert got == {}


@pytest.mark.parametrize("at", [4, 5])
def test_a_ticker_two_coins_hold_at_either_end_is_no_link(at):
    shared = pd.DataFrame({"snapshot_ts": [day(at)], "symbol": ["X"]})
    frame = spans(("a", 1, 4, "X", 1.0, "X", 1.0), ("b", 5, 9, "X", 1.0, "X", 1.0))
    assert aliases(frame, shared) == {}
    other = pd.DataFrame({"snapshot_ts": [day(at)], "symbol": ["Y"]})
    assert aliases(frame, other) == {"b": "a"}


def test_two_candidates_either_way_are_no_link():
    two_old = spans(
        ("a", 1, 4, "X", 1.0, "X", 1.0),
        ("c", 2, 4, "X", 1.0, "X", 1.0),
        ("b", 5, 9, "X", 1.0, "X", 1.0),
    )
    assert aliases(two_old) == {}
    two_new = spans(
        ("a", 1, 4, "X", 1.0, "X", 1.0),
        ("b", 5, 9, "X", 1.0, "X", 1.0),
        ("c", 5, 8, "X", 1.0, "X", 1.0),
    )
    assert aliases(two_new) == {}


def test_a_chain_resolves_every_name_to_the_oldest():
    chain = spans(
        ("c", 7, 9, "X", 1.0, "X", 1.0),
        ("a", 1, 3, "X", 1.0, "X", 1.0),
        ("b", 4, 6, "X", 1.0, "X", 1.0),
    )
    out = identity.decide(chain, TIMES, NO_SHARED)
    assert list(out["alias_id"]) == ["b", "c"]
    assert list(out["coin_id"]) == ["a", "a"]
    assert list(out["previous_id"]) == ["a", "b"]


def test_canonical_names_the_coin_of_a_slug():
    assert identity.canonical("new", {"new": "old"}) == "old"
    assert identity.canonical("other", {"new": "old"}) == "other"


def test_refresh_rebuilds_the_aliases_from_the_stored_rows(settings, engine, tmp_path):
    import sqlalchemy as sa

    from liquidity_core.ingest import ingest_paths

    header = "coin,symbol,price,1h,24h,7d,24h_volume,mkt_cap,date"
    paths = []
    for d in range(1, 7):
        name, symbol = ("Old Coin", "X") if d <= 3 else ("New Coin", "x")
        path = tmp_path / f"drop_{d}.csv"
        path.write_text(
            f"{header}\n{name},{symbol},1.0,0.01,0.02,0.03,1000000,{1e9 * 1.01**d},2024-01-0{d}\n"
            f"Other,Y,1.0,0.01,0.02,0.03,1000000,5e9,2024-01-0{d}\n"
        )
        paths.append(path)
    assert all(r.status == "loaded" for r in ingest_paths(paths, settings=settings))
    assert identity.aliases(engine) == {"new-coin": "old-coin"}
    with engine.begin() as conn:
        conn.execute(identity.coin_aliases.delete())
    assert identity.aliases(engine) == {}
    assert identity.refresh(engine) == {"aliases": 1, "added": 1, "removed": 0}
    with engine.connect() as conn:
        assert identity.aliases(conn) == {"new-coin": "old-coin"}
        rows = conn.execute(sa.select(identity.coin_aliases.c.symbol)).scalars().all()
        assert rows == ["X"]  # the ticker as shown, whatever case the files used
    assert identity.refresh(engine) == {"aliases": 1, "added": 0, "removed": 0}
