"""The one model history table that the web app, the Airflow plugin and the report show."""

from __future__ import annotations

from html.parser import HTMLParser

from liquidity_core.reporting.model_history import render_history_table

ROWS = [
    {
        "version": "v2<script>",
        "created_at": "2024-01-03T02:00:05.123456+00:00",
        "status": "champion",
        "holdout_r2": 0.61234,
        "champion_holdout_r2": 0.5,
        "persistence_r2": float("nan"),
        "reason": "beats champion & persistence",
        "recent_mean_r2": None,
        "holdout_skill": 0.25,
    },
    {
        "version": "v1",
        "created_at": "2024-01-02T02:00:00+00:00",
        "status": "rejected",
        "holdout_r2": None,
        "champion_holdout_r2": None,
        "persistence_r2": 0.4,
        "reason": "no better",
        "recent_mean_r2": None,
        "holdout_skill": None,
    },
]


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.head: list[str] = []
        self.ids: list[str] = []
        self._in = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._in = tag
            (self.head if tag == "th" else self.rows[-1]).append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in = None

    def handle_data(self, data):
        if self._in == "th":
            self.head[-1] += data
        elif self._in == "td":
            self.rows[-1][-1] += data


def _cells(html: str) -> _Cells:
    parser = _Cells()
    parser.feed(html)
    parser.close()
    parser.rows = [r for r in parser.rows if r]
    return parser


def test_rows_in_order_escaped_and_formatted():
    html = render_history_table(ROWS)
    assert "<script>" not in html and "v2&lt;script&gt;" in html
    page = _cells(html)
    assert page.ids == ["model-history"]
    assert page.head == [
        "Version",
        "Trained",
        "R² (challenger)",
        "R² (champion)",
        "R² (persistence)",
        "Form",
        "Status",
        "Decision",
    ]
    assert page.rows == [
        [
            "v2<script>",
            "2024-01-03 02:00:05",
            "0.612",
            "0.500",
            "–",
            "forest",
            "champion",
            "beats champion & persistence",
        ],
        ["v1", "2024-01-02 02:00:00", "–", "–", "0.400", "forest", "rejected", "no better"],
    ]
    assert 'class="status-champion"' in html and 'class="badge badge-champion"' in html


def test_extra_columns_only_when_asked_and_present():
    page = _cells(render_history_table(ROWS, table_id=None, extra=True))
    assert page.ids == []
    assert page.head[5:] == ["Skill", "Form", "Status", "Decision"]  # no recent mean R²
    assert [r[5] for r in page.rows] == ["0.250", "–"]


def test_no_rows_says_so():
    page = _cells(render_history_table([]))
    assert page.rows == [["No model has been trained yet: run liquidity train."]]


def test_the_form_cv_chose_is_shown_with_its_gain_over_the_base():
    row = dict(ROWS[1], params={"blend_weight": 0.75, "cv_r2_by_blend": {"0": 0.60, "0.75": 0.65}})
    page = _cells(render_history_table([row]))
    assert "HAR base + 0.75 × forest (CV R² +0.050 over the base)" in page.rows[0]
