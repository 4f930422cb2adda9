"""viz/: figure content (nodes, colours, highlights, positions, colour limits, bars) under Agg."""

import matplotlib

matplotlib.use("Agg")

import json  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from viz.channels import plot_channels  # noqa: E402
from viz.heatmaps import plot_heatmaps, select_slice  # noqa: E402
from viz.layout import Box, layered_layout, neighbourhood, pane_layouts  # noqa: E402
from viz.palette import FOLDED_COLOR, REMOVED_COLOR, ROLE_COLORS  # noqa: E402
from viz.static_graph import draw_before_after, draw_graph  # noqa: E402
from viz.text import label_lines, label_size  # noqa: E402

SHAPE = (None, 8, 8, 16)
#: The roles of the layer classes these graphs use (as the Keras frontend's vocabulary gives them).
ROLES = {"InputLayer": "input", "Conv2D": "linear", "Conv2DTranspose": "linear", "Dense": "linear",
         "BatchNormalization": "bn", "ReLU": "activation", "Functional": "model"}


# --- synthetic graphs following fold.core.graph's schema ----------------------------------


def _graph(name: str) -> nx.DiGraph:
    return nx.DiGraph(name=name, frontend="keras", inputs=[], outputs=[])


def _add(g: nx.DiGraph, name: str, op: str, *inputs: str, **attrs) -> str:
    g.add_node(name, op=op, role=ROLES.get(op, "other"), config={}, weights={}, calls=1, **attrs)
    for source in inputs:
        g.add_edge(source, name, shape=SHAPE)
    return name


def _conv_bn_relu(g: nx.DiGraph, prefix: str, source: str, op: str = "Conv2D") -> str:
    conv = _add(g, f"{prefix}_conv", op, source)
    bn = _add(g, f"{prefix}_bn", "BatchNormalization", conv)
    return _add(g, f"{prefix}_relu", "ReLU", bn)


def chain() -> nx.DiGraph:
    """input -> conv -> bn -> relu -> dense."""
    g = _graph("chain")
    _add(g, "dense", "Dense", _conv_bn_relu(g, "b1", _add(g, "input", "InputLayer")))
    g.graph.update(inputs=["input"], outputs=["dense"])
    return g


def unet() -> nx.DiGraph:
    """Two-level U-Net: encoder blocks, transposed-conv decoder, concatenation skips."""
    g = _graph("unet")
    e1 = _conv_bn_relu(g, "enc1", _add(g, "input", "InputLayer"))
    e2 = _conv_bn_relu(g, "enc2", _add(g, "pool1", "MaxPooling2D", e1))
    mid = _conv_bn_relu(g, "mid", _add(g, "pool2", "MaxPooling2D", e2))
    u2 = _conv_bn_relu(g, "up2", mid, op="Conv2DTranspose")
    d2 = _conv_bn_relu(g, "dec2", _add(g, "cat2", "Concatenate", u2, e2))
    u1 = _conv_bn_relu(g, "up1", d2, op="Conv2DTranspose")
    d1 = _conv_bn_relu(g, "dec1", _add(g, "cat1", "Concatenate", u1, e1))
    _add(g, "head", "Conv2D", d1)
    g.graph.update(inputs=["input"], outputs=["head"])
    return g


def densenet(blocks: int = 63) -> nx.DiGraph:
    """DenseNet-like: stem, then (bn, relu, conv, bn, relu, conv, concat) blocks whose concat
    also reads the previous concat, a transition every 16 blocks; ~450 nodes."""
    g = _graph("densenet")
    x = _conv_bn_relu(g, "stem", _add(g, "input", "InputLayer"))
    for i in range(blocks):
        y = _add(g, f"b{i}_relu1", "ReLU", _add(g, f"b{i}_bn1", "BatchNormalization", x))
        y = _add(g, f"b{i}_bn2", "BatchNormalization", _add(g, f"b{i}_conv1", "Conv2D", y))
        y = _add(g, f"b{i}_relu2", "ReLU", y)
        x = _add(g, f"b{i}_concat", "Concatenate", x, _add(g, f"b{i}_conv2", "Conv2D", y))
        if i % 16 == 15:
            x = _add(g, f"t{i}_pool", "AveragePooling2D", _add(g, f"t{i}_conv", "Conv2D", x))
    _add(g, "predictions", "Dense", _add(g, "gap", "GlobalAveragePooling2D", x))
    return g


def fold_away(g: nx.DiGraph, bns: list[str]) -> nx.DiGraph:
    """The "after" graph: each BN removed, its producer wired to its consumers."""
    after = g.copy()
    for bn in bns:
        (producer,) = after.predecessors(bn)
        for consumer in list(after.successors(bn)):
            after.add_edge(producer, consumer, shape=SHAPE)
        after.remove_node(bn)
    return after


def pairs(g: nx.DiGraph) -> tuple[list[str], list[str]]:
    """(folded layers, removed BNs) for every BN that follows a linear layer."""
    found = [(p, n) for n, role in g.nodes(data="role") if role == "bn"
             for p in g.predecessors(n) if g.nodes[p]["role"] == "linear"]
    return [p for p, _ in found], [b for _, b in found]


def nodes_of(ax):
    (collection,) = [c for c in ax.collections if c.get_gid() == "nodes"]
    return collection


def boxes_of(ax) -> list[Box]:
    """The drawn node rectangles, in graph order."""
    return [Box(*e.p0, *e.size) for e in (p.get_extents() for p in nodes_of(ax).get_paths())]


def bar_extents(ax, gid: str) -> np.ndarray:
    """(bars, 2): base and base + height of each bar of the collection ``gid``, in channel order."""
    (bars,) = [c for c in ax.collections if c.get_gid() == gid]
    return np.array([p.vertices[[0, 2], 1] for p in bars.get_paths()])


@pytest.fixture(autouse=True)
def no_pyplot_state():
    yield
    assert plt.get_fignums() == [], "viz must not register figures with pyplot"


# --- layout ---------------------------------------------------------------------------


def _sizes(g: nx.DiGraph) -> dict:
    return {n: label_size(label_lines(g, n)) for n in g}


def overlapping(boxes: dict) -> list[tuple]:
    """Every pair of boxes that overlap (sweep over x: a 900-node pane is 400 000 pairs otherwise)."""
    found, items = [], sorted(boxes.items(), key=lambda item: item[1].x)
    for i, (a, box) in enumerate(items):
        for b, other in items[i + 1:]:
            if other.x >= box.right:
                break
            if box.overlaps(other):
                found.append((a, b))
    return found


def crossings(layout, skip=()) -> list[tuple]:
    """Edge segments running through a node that is neither of the edge's ends (nor in ``skip``)."""
    found = []
    for (u, v), route in layout.edges.items():
        for (x0, y0), (x1, y1) in zip(route, route[1:]):
            seg = Box(min(x0, x1), min(y0, y1), abs(x1 - x0) or 1e-6, abs(y1 - y0) or 1e-6)
            for node, box in layout.nodes.items():
                inner = Box(box.x + 1, box.y + 1, box.w - 2, box.h - 2)
                if node not in (u, v) and node not in skip and seg.overlaps(inner):
                    found.append((u, v, node))
    return found


@pytest.mark.parametrize("make", [chain, unet, densenet])
def test_layout_puts_every_edge_downward_without_overlaps_or_edges_through_nodes(make):
    g = make()
    layout = layered_layout(g, _sizes(g))
    assert set(layout.nodes) == set(g) and set(layout.edges) == set(g.edges)
    assert all(layout.nodes[u].bottom < layout.nodes[v].y for u, v in g.edges)
    assert overlapping(layout.nodes) == []
    assert crossings(layout) == []
    for node, (w, h) in _sizes(g).items():  # every box as large as its label asked
        assert (layout.nodes[node].w, layout.nodes[node].h) == pytest.approx((w, h))
    assert all(0 <= b.x and b.right <= layout.width and 0 <= b.y and b.bottom <= layout.height
               for b in layout.nodes.values())


def test_layout_is_deterministic():
    g = unet()
    assert layered_layout(g, _sizes(g)) == layered_layout(g, _sizes(g))


def test_layout_keeps_a_chain_straight():
    g = chain()
    assert len({round(b.center[0], 3) for b in layered_layout(g, _sizes(g)).nodes.values()}) == 1


def test_layout_survives_a_cycle_from_a_shared_layer():
    g = chain()
    g.add_edge("dense", "dense", shape=SHAPE)  # shared Dense applied to its own output
    g.add_edge("b1_relu", "b1_conv", shape=SHAPE)
    layout = layered_layout(g, _sizes(g))
    assert set(layout.nodes) == set(g) and overlapping(layout.nodes) == []


def test_blocks_are_frames_around_their_members():
    g = densenet(blocks=8)
    group_of = {n: n.split("_")[0] for n in g if n.startswith("b") and "_" in n}
    layout = layered_layout(g, _sizes(g), group_of, {})
    assert set(layout.groups) == set(group_of.values())
    for node, group in group_of.items():
        assert layout.groups[group].contains(layout.nodes[node])
    others = {n: b for n, b in layout.nodes.items() if n not in group_of}
    assert overlapping({**others, **{f"[{k}]": v for k, v in layout.groups.items()}}) == []


def test_both_panes_share_one_layout_and_a_folded_bn_is_a_hole_the_edge_runs_through():
    before = unet()
    folded, removed = pairs(before)
    after = fold_away(before, removed)
    left, right = pane_layouts(before, after, _sizes(before))
    assert right.nodes == {n: left.nodes[n] for n in after}
    conv, bn = folded[0], removed[0]
    relu = next(iter(after.successors(conv)))
    route = right.edges[(conv, relu)]
    assert route[0] == left.edges[(conv, bn)][0] and route[-1] == left.edges[(bn, relu)][-1]
    assert crossings(right, skip=removed) == []


def test_a_node_only_in_after_gets_a_place_of_its_own():
    before = chain()
    after = before.copy()
    _add(after, "new_identity", "Identity", "dense")
    left, right = pane_layouts(before, after, _sizes(after))
    assert overlapping(right.nodes) == [] and set(right.nodes) == set(after)
    assert right.nodes["new_identity"].y > right.nodes["dense"].bottom


# --- draw_graph -----------------------------------------------------------------------


@pytest.mark.parametrize("make", [chain, unet, densenet])
def test_draw_graph_draws_every_node_in_its_role_colour_at_its_layout_box(make):
    g = make()
    ax = draw_graph(g).axes[0]
    nodes = nodes_of(ax)
    assert len(nodes.get_paths()) == len(g)
    for face, (_, role) in zip(nodes.get_facecolors(), g.nodes(data="role")):
        assert tuple(face[:3]) == pytest.approx(to_rgb(ROLE_COLORS[role]))
    layout = layered_layout(g, {n: label_size(label_lines(g, n, len(g) <= 80)) for n in g})
    for box, n in zip(boxes_of(ax), g):
        assert box.as_list() == pytest.approx(layout.nodes[n].as_list(), abs=0.01)


def test_folded_layers_are_outlined():
    g = unet()
    folded, _ = pairs(g)
    nodes = nodes_of(draw_graph(g, folded_layers=folded).axes[0])
    outlined = {n for n, edge in zip(g, nodes.get_edgecolors()) if tuple(edge[:3]) == to_rgb(FOLDED_COLOR)}
    assert outlined == set(folded)


def test_every_label_fits_its_box_as_drawn():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = draw_graph(unet())
    ax = fig.axes[0]
    renderer = FigureCanvasAgg(fig).get_renderer()
    boxes = boxes_of(ax)
    to_data = ax.transData.inverted()
    for text in ax.texts:
        extent = text.get_window_extent(renderer).transformed(to_data)
        x0, x1 = sorted((extent.x0, extent.x1))
        y0, y1 = sorted((extent.y0, extent.y1))
        assert any(b.x <= x0 and x1 <= b.right and b.y <= y0 and y1 <= b.bottom for b in boxes), text.get_text()


def test_labels_show_shapes_on_small_graphs_only():
    small = [t.get_text() for t in draw_graph(chain()).axes[0].texts]
    large = [t.get_text() for t in draw_graph(densenet()).axes[0].texts]
    assert "?×8×8×16" in small and "b1_conv" in small
    assert "b0_conv1" in large and not any("×" in t for t in large)


def test_nested_model_is_one_node_with_its_size():
    g = chain()
    _add(g, "backbone", "Functional", "dense", subgraph=unet())
    ax = draw_graph(g).axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert f"Functional, {len(unet())} layers" in labels
    assert len(nodes_of(ax).get_paths()) == len(g)


def test_figure_grows_with_the_graph_and_is_capped():
    small, large = draw_graph(chain()), draw_graph(densenet())
    assert large.get_figheight() > 10 * small.get_figheight()
    assert max(large.get_size_inches()) <= 300


def test_draw_graph_into_a_given_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    assert draw_graph(chain(), ax=ax) is fig
    assert len(nodes_of(ax).get_paths()) == len(chain())


# --- before / after -------------------------------------------------------------------


def test_removed_bns_are_marked_before_and_absent_after():
    before = unet()
    folded, removed = pairs(before)
    after = fold_away(before, removed)
    left, right = draw_before_after(before, after, folded_layers=folded, removed_bns=removed).axes
    marked = {n for n, edge in zip(before, nodes_of(left).get_edgecolors()) if tuple(edge[:3]) == to_rgb(REMOVED_COLOR)}
    assert marked == set(removed)
    assert len(nodes_of(right).get_paths()) == len(before) - len(removed)
    assert not any(tuple(edge[:3]) == to_rgb(REMOVED_COLOR) for edge in nodes_of(right).get_edgecolors())


def test_shared_nodes_keep_their_boxes_in_both_panels():
    before = densenet()
    after = fold_away(before, pairs(before)[1])
    left, right = draw_before_after(before, after).axes
    where = dict(zip(before, boxes_of(left)))
    assert dict(zip(after, boxes_of(right))) == {n: where[n] for n in after}
    assert left.get_xlim() == right.get_xlim() and left.get_ylim() == right.get_ylim()


def test_focus_draws_only_the_neighbourhood():
    before = densenet()
    after = fold_away(before, pairs(before)[1])
    window = neighbourhood(before, "b10_conv1", hops=3)
    assert set(window) == {"b9_concat", "b10_bn1", "b10_relu1", "b10_conv1", "b10_bn2", "b10_relu2", "b10_conv2"}
    left, right = draw_before_after(before, after, focus="b10_conv1", hops=3).axes
    assert len(nodes_of(left).get_paths()) == len(window)
    assert len(nodes_of(right).get_paths()) == len(set(window) & set(after))


def test_neighbourhood_of_a_missing_node_names_it():
    with pytest.raises(ValueError, match="'nope'"):
        neighbourhood(chain(), "nope", 2)


# --- heatmaps ---------------------------------------------------------------------------


def test_heatmaps_share_a_colour_scale_and_the_diff_has_its_own():
    rng = np.random.default_rng(0)
    original = rng.normal(size=(6, 9))
    folded = original + rng.normal(scale=1e-6, size=original.shape) + 0.5
    fig = plot_heatmaps(original, folded)
    first, second, diff = (ax.images[0] for ax in fig.axes[:3])
    both = np.stack([original, folded])
    assert first.get_clim() == second.get_clim() == (both.min(), both.max())
    assert diff.get_clim() == (0.0, pytest.approx(np.abs(original - folded).max()))
    assert all(image.get_array().shape == (6, 9) for image in (first, second, diff))
    assert "max 0.5" in fig.axes[2].get_title()
    assert len(fig.axes) == 5  # three panels and two colour bars


@pytest.mark.parametrize("shape, expected", [((7,), (1, 7)), ((), (1, 1))])
def test_heatmaps_show_vectors_as_one_row(shape, expected):
    fig = plot_heatmaps(np.ones(shape), np.zeros(shape))
    assert fig.axes[0].images[0].get_array().shape == expected


def test_heatmaps_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(3, 2\)"):
        plot_heatmaps(np.ones((2, 3)), np.ones((3, 2)))


@pytest.mark.parametrize("shape, axis, expected", [
    ((2, 5), -1, (1, 5)),
    ((2, 7, 3), -1, (1, 7)),
    ((2, 6, 7, 3), -1, (6, 7)),
    ((2, 4, 6, 7, 3), -1, (6, 7)),
    ((2, 3, 6, 7), 1, (6, 7)),
])
def test_select_slice_shapes(shape, axis, expected):
    assert select_slice(np.zeros(shape), channel_axis=axis).shape == expected


def test_select_slice_picks_the_sample_channel_and_middle_depth():
    nhwc = np.arange(2 * 6 * 7 * 3).reshape(2, 6, 7, 3)
    assert np.array_equal(select_slice(nhwc, sample=1, channel=2), nhwc[1, :, :, 2])
    nchw = np.moveaxis(nhwc, -1, 1)
    assert np.array_equal(select_slice(nchw, sample=1, channel=2, channel_axis=1), nhwc[1, :, :, 2])
    volume = np.arange(2 * 5 * 3 * 4 * 2).reshape(2, 5, 3, 4, 2)
    assert np.array_equal(select_slice(volume, channel=1), volume[0, 2, :, :, 1])


# --- channels ---------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 7, 256])
def test_channels_plot_one_bar_per_channel(channels):
    rng = np.random.default_rng(channels)
    scale, shift = rng.uniform(0.5, 2, channels), rng.normal(size=channels)
    before = np.sort(rng.normal(size=(channels, 2)), axis=1)
    fig = plot_channels(scale, shift, before, before * scale[:, None])
    s_ax, t_ax, range_ax = fig.axes
    assert bar_extents(s_ax, "scale s")[:, 1] == pytest.approx(scale)
    assert bar_extents(t_ax, "shift t")[:, 1] == pytest.approx(shift)
    assert bar_extents(range_ax, "kernel before folding") == pytest.approx(before)
    assert bar_extents(range_ax, "kernel after folding") == pytest.approx(before * scale[:, None])
    assert len(range_ax.get_xticks()) <= 14


def test_a_wide_layer_is_drawn_as_sorted_curves_with_its_extreme_channels_named():
    """2048 bars are unreadable: each panel becomes the sorted values, the extreme channels named."""
    rng = np.random.default_rng(5)
    scale, shift = rng.uniform(0.5, 2, 2048), rng.normal(size=2048)
    scale[1234] = 40.0  # the channel a tiny variance blows up
    before = np.sort(rng.normal(size=(2048, 2)), axis=1)
    fig = plot_channels(scale, shift, before, before * scale[:, None])
    s_ax, t_ax, range_ax = fig.axes
    (curve,) = [line for line in s_ax.get_lines() if line.get_gid() == "scale s"]
    assert np.asarray(curve.get_ydata()) == pytest.approx(np.sort(scale))
    labels = [a.get_text() for a in s_ax.texts]
    assert f"ch {int(np.argmin(scale))}: {scale.min():.3g}" in labels and "ch 1234: 40" in labels, labels
    after = [line for line in range_ax.get_lines() if line.get_gid() == "kernel after folding"]
    assert np.asarray(after[0].get_ydata()) == pytest.approx(np.sort(np.abs(before * scale[:, None]).max(axis=1)))
    assert not [c for c in s_ax.collections if c.get_gid() == "scale s"]  # no bars
    assert "2048 output channels" in range_ax.get_xlabel() and fig.get_size_inches()[0] <= 8


def test_channels_switch_to_symlog_when_one_channel_blows_up():
    scale = np.ones(16)
    scale[3] = 1e5  # a near-zero moving variance
    ranges = np.tile([-1.0, 1.0], (16, 1))
    fig = plot_channels(scale, np.zeros(16), ranges, ranges * scale[:, None])
    assert [ax.get_yscale() for ax in fig.axes] == ["symlog", "linear", "symlog"]


def test_channels_leave_out_non_finite_values():
    fig = plot_channels(np.array([1.0, np.inf, np.nan, 2.0]), np.zeros(4))
    assert bar_extents(fig.axes[0], "scale s")[:, 1] == pytest.approx([1.0, 2.0])


def test_channels_without_ranges_have_two_panels():
    assert len(plot_channels(np.ones(4), np.zeros(4)).axes) == 2


def test_the_channels_data_holds_plot_channels_values_for_the_browser():
    """The report's chart: the same panels and series by name as ``plot_channels``, each channel's values
    (a range's min as its bar's low, its max as its high), non-finite values as gaps, a title as typed;
    beyond WIDE_CHANNELS each series sorted, its channels with it; plain JSON."""
    from viz.channels import channels_data

    rng = np.random.default_rng(3)
    scale, shift = rng.uniform(0.5, 2, 7), rng.normal(size=7)
    scale[2] = np.nan
    before = np.sort(rng.normal(size=(7, 2)), axis=1)
    chart = channels_data(scale, shift, before, before * np.nan_to_num(scale)[:, None], title="<b>c</b> ← bn")
    assert json.loads(json.dumps(chart, allow_nan=False)) == chart
    assert [p["label"] for p in chart["panels"]] == ["scale s", "shift t", "kernel range"]
    (s,), (t,), (low, high) = (p["series"] for p in chart["panels"])
    assert [s["name"], t["name"], low["name"], high["name"]] == ["scale s", "shift t", "kernel before folding",
                                                                  "kernel after folding"]
    assert {x["kind"] for x in (s, t, low, high)} == {"bar"} and s["channel"] == list(range(7))
    assert s["high"][2] is None and np.array(s["high"][:2] + s["high"][3:]) == pytest.approx(np.delete(scale, 2))
    assert t["high"] == pytest.approx(shift) and s["low"] is None
    assert low["low"] == pytest.approx(before[:, 0]) and low["high"] == pytest.approx(before[:, 1])
    assert chart["title"] == "<b>c</b> ← bn" and chart["axis"] == "output channel"
    values = rng.uniform(0.5, 2, 300)
    wide = channels_data(values, rng.normal(size=300))
    (curve,), _ = (p["series"] for p in wide["panels"])
    assert curve["kind"] == "curve" and curve["high"] == sorted(curve["high"])
    assert np.array(curve["high"]) == pytest.approx(values[curve["channel"]]) and len(curve["channel"]) == 300
    assert wide["axis"].startswith("300 output channels")
    with pytest.raises(ValueError, match=r"range_before"):
        channels_data(np.ones(4), np.zeros(4), range_before=np.zeros((3, 2)))


def test_channels_reject_mismatched_ranges():
    with pytest.raises(ValueError, match=r"range_before.*\(4, 2\).*\(3, 2\)"):
        plot_channels(np.ones(4), np.zeros(4), range_before=np.zeros((3, 2)))


def test_vectors_plot_both_curves_and_their_difference():
    from viz import plot_vectors

    a = np.linspace(0, 1, 1000)
    fig = plot_vectors(a, a + 1e-7)
    top, bottom = fig.axes
    assert [line.get_gid() for line in top.get_lines()] == ["original", "folded"]
    (diff,) = bottom.get_lines()
    assert diff.get_ydata() == pytest.approx(np.full(1000, 1e-7), abs=1e-12)
    assert "1e-07" in bottom.get_title()


# --- the quantization view ------------------------------------------------------------------


def patch_heights(ax, gid: str) -> list[float]:
    return [p.get_height() for p in ax.patches if p.get_gid() == gid]


def test_sqnr_bars_one_per_layer_and_figure_and_none_left_out():
    from viz.quant_plots import SERIES, plot_sqnr

    values = {"per_tensor_before": [45.0, 44.0], "per_tensor_after": [10.0, 40.0],
              "per_channel_after": [46.0, 45.0], "per_tensor_after_cle": [28.0, None]}
    fig = plot_sqnr(["conv", "dense"], values, title="two layers")
    (ax,) = fig.axes
    for key, _, colour in SERIES:
        expected = [v for v in values[key] if v is not None]
        assert patch_heights(ax, key) == pytest.approx(expected), key
        assert all(to_rgb(p.get_facecolor()) == to_rgb(colour) for p in ax.patches if p.get_gid() == key)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv", "dense"]
    assert fig._suptitle.get_text() == "two layers"
    assert [t.get_text() for t in ax.texts] == ["45.0", "44.0", "10.0", "40.0", "46.0", "45.0", "28.0"]
    assert len(plot_sqnr(["a"], {"per_tensor_after": [None]}).axes[0].patches) == 0  # nothing applies: no bars


def test_ranges_mark_the_channels_that_set_the_per_tensor_scale():
    from viz.quant_plots import plot_ranges

    peaks = np.array([50.0, 1.0, 0.5, 50.0, 2.0])
    (ax,) = plot_ranges(peaks).axes
    assert patch_heights(ax, "setters") == [50.0, 50.0]
    assert patch_heights(ax, "peaks") == [1.0, 0.5, 2.0]
    assert ax.get_yscale() == "log"
    (step,) = [line for line in ax.get_lines() if line.get_label() == "one int8 step (per tensor)"]
    assert step.get_ydata()[0] == pytest.approx(50.0 / 127)
    equalized = np.array([7.0, 1.5, 1.0, 7.0, 2.5])
    (ax,) = plot_ranges(peaks, equalized).axes
    assert patch_heights(ax, "equalized") == list(equalized)
    assert {p.get_x() + p.get_width() / 2 for p in ax.patches if p.get_gid() == "setters"} == {-0.2, 2.8}


def test_ranges_of_thousands_of_channels_are_dots_in_a_bounded_figure():
    from viz.quant_plots import BAR_CHANNELS, plot_ranges

    peaks = np.random.default_rng(0).uniform(0.1, 1, 2048)
    fig = plot_ranges(peaks, peaks / 2)
    (ax,) = fig.axes
    assert len(ax.patches) == 0 and fig.get_size_inches()[0] <= 14
    assert {line.get_gid() for line in ax.get_lines()} >= {"peaks", "setters", "equalized"}
    assert len(plot_ranges(peaks[:BAR_CHANNELS]).axes[0].patches) == BAR_CHANNELS


def test_a_figure_made_for_a_dark_page_is_dark_with_light_letters():
    from matplotlib.colors import to_rgba

    from viz.pictures import darkened, picture

    rng = np.random.default_rng(0)
    original = rng.normal(size=(6, 9))
    light = plot_heatmaps(original, original + 1e-6)
    dark = darkened(plot_heatmaps(original, original + 1e-6))
    assert dark.get_facecolor() == to_rgba("#0e1117") and dark.axes[0].title.get_color() == "#fafafa"
    assert light.get_facecolor() == to_rgba("white") and light.axes[0].title.get_color() != "#fafafa"
    assert picture(dark) != picture(light)
    assert plot_heatmaps(original, original).get_facecolor() == to_rgba("white")  # no setting left behind
