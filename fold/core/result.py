"""The one result type of a fold, whatever the format: decisions, graphs, counts, timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import networkx as nx

from fold.core.graph import count_bns
from fold.core.rules import Decision

M = TypeVar("M")


@dataclass
class FoldResult(Generic[M]):
    """A folded model with everything needed to explain it; ``original`` is never modified.

    frontend:   the frontend that read and rewrote the model (``fold.frontends.formats.Frontend``).
    name:       the model's name (file stem or model name), for messages and file names.
    original, folded: the frontend's model objects (a keras.Model, a GraphDef, ...).
    decisions:  one per candidate pair, in model order: folded, or skipped with a reason.
    graph_before, graph_after: foldscope's graphs of both models (``fold.core.graph``).
    timings_s:  seconds spent per stage ("load", "fold", "verify").
    notice:     something the user must know about this result (None when nothing).
    """

    frontend: Any
    name: str
    original: M
    folded: M
    decisions: list[Decision]
    graph_before: nx.DiGraph
    graph_after: nx.DiGraph
    timings_s: dict[str, float] = field(default_factory=dict)
    notice: str | None = None

    @property
    def folded_pairs(self) -> list[Decision]:
        return [d for d in self.decisions if d.folded]

    @property
    def backward_pairs(self) -> list[Decision]:
        """Folded pairs whose layer now computes what the map computed, all of it (backward folds): what the
        quantization views line up against the BN's output, layer by layer."""
        return [d for d in self.folded_pairs if d.direction == "backward"]

    @property
    def skipped_pairs(self) -> list[Decision]:
        return [d for d in self.decisions if not d.folded]

    def pairs(self, form: str, folded: bool = True) -> list[Decision]:
        """The folded (or skipped) pairs of one form: "bn", "affine" or "bias" (``Candidate.form``)."""
        return [d for d in self.decisions if d.form == form and d.folded == folded]

    @property
    def bn_before(self) -> int:
        """BatchNorms in the original model (``count_bns`` of its graph): BN layers and ops, and
        BNs in decomposed form, by what they compute (``fold.frontends.ops.chains``)."""
        return count_bns(self.graph_before)

    @property
    def bn_after(self) -> int:
        """BatchNorms left in the folded model (``count_bns`` of its graph, by the rule that counted
        ``bn_before``: a recount of the written file gives the same number)."""
        return count_bns(self.graph_after)

    @property
    def affine_before(self) -> int:
        """Other affine maps the fold can absorb in the original model (scalar or per-channel
        Mul/Add blocks that are no BatchNorm), counted apart from the BNs."""
        return count_bns(self.graph_before, "affine")

    @property
    def affine_after(self) -> int:
        return count_bns(self.graph_after, "affine")

    @property
    def bias_merges(self) -> int:
        """Bias adds merged into the layer before them (no BatchNorm, and no other affine map)."""
        return len(self.pairs("bias"))

    def absorbed(self, what: str, folded: bool = True, direction: str | None = None) -> int:
        """How many BatchNorms (``what`` "bn") or other affine maps ("affine") the folded (or skipped)
        pairs hold, those of one ``direction`` only when given (a chain of maps counts each of them)."""
        return sum(d.absorbs.get(what, 0) for d in self.decisions
                   if d.folded == folded and (direction is None or d.direction == direction))

    def counts(self) -> dict[str, int]:
        """What the file held and what the fold did, each kind of map apart (the report's keys): BatchNorms
        folded and skipped, other affine maps likewise, bias merges; the maps folded forward, split over a
        Concat, or partially (each partial fold leaves one Add of its shift, ``shift_adds``)."""
        both = lambda direction: self.absorbed("bn", direction=direction) + self.absorbed("affine", direction=direction)  # noqa: E731
        return {"folded": self.absorbed("bn"), "skipped": self.absorbed("bn", folded=False),
                "bn_before": self.bn_before, "bn_after": self.bn_after,
                "affine_folded": self.absorbed("affine"), "affine_skipped": self.absorbed("affine", folded=False),
                "affine_before": self.affine_before, "affine_after": self.affine_after,
                "bias_merges": self.bias_merges, "bias_skipped": len(self.pairs("bias", folded=False)),
                "forward": both("forward"), "partial": both("partial"), "concat": both("concat"),
                "shift_adds": len([d for d in self.folded_pairs if d.direction == "partial"])}
