"""The page's "Why it works" tab as data: for one choice of inputs, the walkthrough's figures (PNG)
and the max abs diff of every claimed equality. Computed once per choice and shared by every
session (the page's reruns, from any widget on any tab, then cost nothing here)."""

from __future__ import annotations

from dataclasses import dataclass

from foldscope_app.workbench import why_math
from foldscope_app.workbench.memo import Memo
from viz import explain as figures
from viz.pictures import picture

_CONTENT = Memo(max_entries=48)


@dataclass(frozen=True)
class Case:
    """One counter-example: its title, why the fold breaks, its figure and how far apart the outputs are."""

    title: str
    why: str
    picture: bytes
    max_abs_diff: float


@dataclass(frozen=True)
class WhyContent:
    """The four steps' figures and equalities, the BN's scale and shift per channel, the counter-examples."""

    stamps: bytes
    conv: bytes
    bn: bytes
    fold: bytes
    diff_tf: float
    diff_conv: float
    diff_bn: float
    diff_fold: float
    affine: tuple[tuple[float, float], ...]
    cases: tuple[Case, ...]


def content(size: int, stride: int, padding: str, out_channels: int, random_kernel: bool,
            channel: int) -> WhyContent:
    """The walkthrough of ``why_math.demo(size, stride, padding, out_channels, random_kernel)``, drawn for
    output ``channel``."""
    key = (size, stride, padding, out_channels, random_kernel, channel)
    return _CONTENT.get(key, lambda: _content(*key))


def _content(size: int, stride: int, padding: str, out_channels: int, random_kernel: bool,
             channel: int) -> WhyContent:
    from foldscope_app.workbench.why_tf import tensorflow_tconv

    w = why_math.demo(size, stride, padding, out_channels, random_kernel)
    cases = []
    drawn = {why_math.BnBeforeCounterexample: figures.bn_before_figure,
             why_math.PaddedCounterexample: figures.padding_figure}
    for title, case in why_math.counterexamples(w).items():
        draw = drawn.get(type(case), figures.counterexample_figure)
        shown = channel if case.reference.shape[-1] > channel else 0
        cases.append(Case(title, case.why, picture(draw(case, shown)), case.max_abs_diff))
    return WhyContent(
        stamps=picture(figures.stamps_figure(w, channel)), conv=picture(figures.conv_figure(w, channel)),
        bn=picture(figures.bn_1x1_figure(w, channel)), fold=picture(figures.fold_figure(w, channel)),
        diff_tf=why_math.max_abs_diff(w.scatter_output, tensorflow_tconv(w.x, w.kernel, stride, padding)),
        diff_conv=w.diff_scatter_vs_conv, diff_bn=w.diff_bn_vs_1x1, diff_fold=w.diff_folded_vs_bn,
        affine=tuple(zip(w.affine.scale, w.affine.shift)), cases=tuple(cases))
