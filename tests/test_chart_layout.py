"""Pure checks of the layout fixes every chart gets (lthvp.ui.chart_layout) and of the link-value
notice's rules (lthvp.ui.url_notice), without a browser."""

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lthvp.ui import chart_layout as cl
from lthvp.ui.url_notice import lost_values, unknown_path


def three_panels():
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, subplot_titles=["VP", "mapping only", "LP"])
    for c, name in enumerate(["VP", "map", "LP"], start=1):
        fig.add_trace(go.Scatter(x=[1, 2], y=[c, c + 1], name=name, customdata=[f"h{c}a", f"h{c}b"]), row=1, col=c)
    fig.update_xaxes(title_text="remaining")
    fig.update_layout(title="digits", legend=dict(orientation="h", y=-0.3))
    return fig


def test_split_panels_keeps_each_panels_traces_title_and_axes():
    parts = cl.split_panels(cl.tidy(three_panels()))
    assert len(parts) == 3
    assert [p.data[0].name for p in parts] == ["VP", "map", "LP"]
    assert [list(p.data[0].customdata) for p in parts][2] == ["h3a", "h3b"]  # a click still names its run
    assert all(p.data[0].xaxis == "x" and p.layout.xaxis.title.text == "remaining" for p in parts)
    assert "digits" in parts[0].layout.title.text and "LP" in parts[2].layout.title.text
    assert parts[1].layout.yaxis.showticklabels is None  # shared axes get their labels back


def test_plain_figures_and_single_columns_are_not_split():
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    assert cl.split_panels(fig) == [fig]
    assert cl.split_panels(make_subplots(rows=2, cols=1)) != []


def test_long_subplot_titles_wrap_and_rows_make_room():
    fig = make_subplots(rows=1, cols=5, subplot_titles=[f"L{i} 100.0% · acc 46.9% · moved 83/255" for i in range(5)])
    for c in range(1, 6):
        fig.add_trace(go.Scatter(x=[0], y=[0]), row=1, col=c)
    top = fig.layout.yaxis.domain[1]
    out = cl.fit_subplot_titles(fig)
    assert all("<br>" in a.text for a in out.layout.annotations)
    assert out.layout.yaxis.domain[1] < top and out.layout.annotations[0].y == out.layout.yaxis.domain[1]


def test_a_legend_below_the_plot_moves_under_the_axis_title():
    fig = cl.legend_below(three_panels())
    assert fig.layout.legend.yref == "container" and fig.layout.legend.y == 0
    assert fig.layout.margin.b >= 70 + 24


def test_annotation_text_is_readable_on_its_own_box_in_either_theme():
    fig = go.Figure()
    fig.add_annotation(text="ECE", bgcolor="rgba(255,255,255,0.8)", x=0, y=0)
    fig.add_annotation(text="kept", bgcolor="rgba(255,255,255,0.8)", font=dict(color="#123456"), x=0, y=0)
    dark = cl.readable_text(go.Figure(fig), dark=True)
    assert dark.layout.annotations[0].font.color == "#111111"  # not the dark theme's white
    assert dark.layout.annotations[1].font.color == "#123456"  # an explicit colour stays
    assert cl.readable_text(go.Figure(fig), dark=False).layout.annotations[0].font.color == "#111111"


def test_two_word_categories_go_on_two_lines():
    fig = cl.wrap_categories(go.Figure(go.Bar(x=["L0 100.0%", "L2 64.0%"], y=[1, 2])))
    assert list(fig.layout.xaxis.ticktext) == ["L0<br>100.0%", "L2<br>64.0%"]
    heat = cl.wrap_categories(go.Figure(go.Heatmap(z=[[1, 2]], x=["epoch 1", "epoch 2"])))
    assert heat.layout.xaxis.ticktext is None


def test_lost_link_values_are_named_with_what_was_shown():
    given = {"metric": ["bogus"], "view": ["random"], "ds": ["digits"], "level": ["L9"], "shots": ["1", "x"]}
    final = {"ds": ["digits"], "level": ["L8"], "shots": ["1", "x"]}
    lost = lost_values(given, final, skip={"view"})
    assert lost == ["metric=bogus (left out)", "level=L9 (shown as L8)"]


def test_unknown_paths():
    pages = ["sparsity", "run-detail"]
    assert unknown_path("http://h:1/overview?x=1", pages) == "overview"
    assert unknown_path("http://h:1/", pages) is None and unknown_path("http://h:1/sparsity", pages) is None
    assert unknown_path("http://h:1/lab/run-detail", pages, base="lab") is None
    assert unknown_path("http://h:1/lab/nope/deeper", pages, base="/lab/") == "nope/deeper"
    assert unknown_path(None, pages) is None


def test_split_panels_keep_the_rows_shared_y_range():
    """Panels drawn side by side share their row's y range; split for a narrow screen, each keeps
    that range (its own autorange would make 1-2 and 3-4 look alike), error bars and a set range included."""
    parts = cl.split_panels(cl.tidy(three_panels()))
    assert [list(p.layout.yaxis.range) for p in parts] == [[0.85, 4.15]] * 3  # 1..4 plus 5%
    assert all(p.layout.yaxis.autorange is False for p in parts)

    fig = make_subplots(rows=2, cols=2, shared_yaxes=True)
    fig.add_trace(go.Scatter(x=[1], y=[10], error_y=dict(type="data", array=[5])), row=1, col=1)
    fig.add_trace(go.Scatter(x=[1], y=[0]), row=1, col=2)
    fig.add_trace(go.Bar(x=["a"], y=[2]), row=2, col=1)
    fig.add_trace(go.Bar(x=["b"], y=[4]), row=2, col=2)
    top, _, bars, _ = [p.layout.yaxis.range for p in cl.split_panels(fig)]
    assert list(top) == [-0.75, 15.75] and list(bars) == [-0.2, 4.2]  # rows apart; bars from 0
    assert cl.split_panels(fig)[0].layout.xaxis.range is None  # x was not shared: left to each panel

    fig.update_yaxes(range=[-1, 20], row=1, col=1)  # a range the figure sets is copied as it is
    assert [list(p.layout.yaxis.range) for p in cl.split_panels(fig)[:2]] == [[-1, 20]] * 2
    log = make_subplots(rows=1, cols=2, shared_yaxes=True)
    log.add_trace(go.Scatter(x=[1], y=[10]), row=1, col=1)
    log.add_trace(go.Scatter(x=[1], y=[1000]), row=1, col=2)
    log.update_yaxes(type="log")
    assert [list(p.layout.yaxis.range) for p in cl.split_panels(log)] == [[0.9, 3.1]] * 2  # log10 units
