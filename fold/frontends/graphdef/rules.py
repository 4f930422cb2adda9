"""GraphDef frontend, rules: the shared rules plus what only an op graph can get wrong."""

from __future__ import annotations

from fold.core.rules import Rule, compose
from fold.frontends.graphdef.match import OpCandidate


def _constant_filter(c: OpCandidate) -> str | None:
    if c.kind is not None and c.filter_const is None:
        return (f"The filter of '{c.layer}' is not a Const (it is computed at run time), "
                "so it cannot be rescaled ahead of time.")
    return None


def _unshared_filter(c: OpCandidate) -> str | None:
    if c.filter_readers:
        return (f"The filter Const '{c.filter_const}' of '{c.layer}' is also read by "
                f"{', '.join(repr(r) for r in c.filter_readers)}; scaling it would change them too.")
    return None


def _constant_parameters(c: OpCandidate) -> str | None:
    if c.nonconstant:
        return (f"'{c.bn}' reads {', '.join(c.nonconstant)}, which is not a constant, "
                "so the fold cannot be computed ahead of time.")
    return None


def _chain_single_use(c: OpCandidate) -> str | None:
    if c.extra_readers:
        return (f"An intermediate of the chain '{c.layer}' -> '{c.bn}' is read elsewhere "
                f"({'; '.join(c.extra_readers)}); removing it would change what that reads.")
    return None


#: Checked in order on every GraphDef candidate; the first objection decides. The op-level
#: guards run after the kind and training-mode checks (a training-mode BN has no statistics
#: to read) and before the rules that read the parameters' values. Two shared rules cannot
#: object to an op: every op runs once (a filter read twice is "unshared-filter"), and TF ops
#: carry no fused activation (a Relu in between is the BN's producer: "supported-kind").
RULES: tuple[Rule, ...] = compose(
    Rule("constant-filter", "The op's filter is a Const (possibly behind Identity ops).", _constant_filter),
    Rule("unshared-filter", "No other op reads the filter Const.", _unshared_filter),
    Rule("constant-parameters", "The BatchNorm's and bias's inputs are constants.", _constant_parameters),
    Rule("chain-single-use", "Nothing outside the chain reads the bias add, Mul or BN side outputs.",
         _chain_single_use),
    omit=("not-shared", "linear-activation"),
)
