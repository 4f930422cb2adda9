"""GraphDef frontend, rules: the shared rules and the op-level rules (``fold.frontends.ops.rules``)."""

from __future__ import annotations

from fold.core.rules import Rule, compose
from fold.frontends.ops.rules import CONSTANT_WEIGHTS, SINGLE_USE_CHAIN, UNSHARED_WEIGHTS

#: Checked in order on every GraphDef candidate; the first objection decides. The op-level
#: guards run after the kind and training-mode checks (a training-mode BN has no statistics
#: to read) and before the rules that read the parameters' values. Two shared rules cannot
#: object to an op: every op runs once (a filter read twice is "unshared-weights"), and TF ops
#: carry no fused activation (a Relu in between is the BN's producer: "supported-kind").
#: ``per-channel-operands`` is not listed: a TF layer has no bias input of its own, and the chain
#: finder takes a bias add only when its constant varies along the channel axis.
RULES: tuple[Rule, ...] = compose(CONSTANT_WEIGHTS, UNSHARED_WEIGHTS, SINGLE_USE_CHAIN,
                                  omit=("not-shared", "linear-activation"))
