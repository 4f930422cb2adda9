"""The op-graph layer (``fold.frontends.ops``).

Property tests: random op graphs of every op-level format (``tests/op_graphs.py``: tensors of rank 0
to 5, empty ones, 1-D and 5-D layers, ops with no output or an omitted first one) go through the
fold, a recount of the folded file and the verification. A model its runtime runs is folded; what
foldscope refuses is one FoldError sentence; a correct fold never fails its check; the folded file
holds exactly the BatchNorms the report says are left. Nothing but a FoldError ever escapes.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings

from fold.errors import FoldError
from fold.frontends.tflite.model import interpreter
from fold.pipeline import fold_file, verify
from tests.helpers import recount
from tests.op_graphs import Program, graphdef_model, onnx_model, programs, tflite_model


def _settings(examples: int) -> settings:
    """Derandomized (the same graphs on every run and machine), no example database written."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _zeros(shapes: list) -> list[np.ndarray]:
    return [np.zeros([int(d) for d in shape], np.float32) for shape in shapes]


def _onnx_runs(proto: onnx.ModelProto) -> bool:
    try:
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        session.run(None, {i.name: x for i, x in zip(session.get_inputs(),
                                                      _zeros([i.shape for i in session.get_inputs()]))})
    except Exception:  # noqa: BLE001 - any refusal: the model does not run
        return False
    return True


def _tflite_runs(data: bytes) -> bool:
    try:
        found = interpreter(data)
        for detail, x in zip(found.get_input_details(), _zeros([d["shape"] for d in found.get_input_details()])):
            found.set_tensor(detail["index"], x)
        found.invoke()
    except Exception:  # noqa: BLE001
        return False
    return True


def _graphdef_runs(graph_def) -> bool:
    import tensorflow as tf

    try:
        with tf.Graph().as_default() as graph:
            tf.graph_util.import_graph_def(graph_def, name="")
            x = graph.get_tensor_by_name("x:0")
            with tf.compat.v1.Session(graph=graph) as session:
                session.run([n.name + ":0" for n in graph_def.node if n.op == "Identity"][-1:],
                            {x: np.zeros(x.shape.as_list(), np.float32)})
    except Exception:  # noqa: BLE001
        return False
    return True


def _through_foldscope(path, program: Program, runs: bool, folder) -> list[str]:
    """Fold, recount and verify the model at ``path`` (see the module docstring); what happened:
    "refused" (a FoldError), "folded" / "skipped" (pairs), "verified" or "unverified" (a FoldError)."""
    try:
        result = fold_file(path)
    except FoldError as exc:
        assert not runs, f"{program}: a model its runtime runs was refused: {exc}"
        assert "\n" not in str(exc) and path.stem in str(exc), f"{program}: {exc}"
        return ["refused"]
    seen = sorted({"folded" if d.folded else "skipped" for d in result.decisions})
    assert recount(result, folder) == (result.bn_after, result.affine_after), program
    try:
        v = verify(result, samples=2).verification
    except FoldError as exc:  # an input no sample can be drawn for (a scalar, a batch of 0 rows), a runtime's refusal
        assert "\n" not in str(exc) and len(str(exc)) < 400, f"{program}: {exc}"
        return [*seen, "unverified"]
    assert v.verdict != "fail", f"{program}: {v.reason}"
    return [*seen, "verified"]


def _random_graphs(tmp_path, build, suffix: str, runs, examples: int) -> Counter:
    """``examples`` random programs built by ``build`` into ``suffix`` files, each through foldscope;
    how often each outcome came."""
    seen: Counter = Counter()

    @_settings(examples)
    @given(programs())
    def one(program):
        made = build(program)
        path = tmp_path / f"random{suffix}"
        path.write_bytes(made if isinstance(made, bytes) else made.SerializeToString())
        seen.update(_through_foldscope(path, program, runs(made), tmp_path))

    one()
    return seen


# Derandomized, so each run draws the same graphs; the floors say the draws keep exercising folds,
# refusals and verdicts (about 70 % of what hypothesis 6.170 draws).
def test_random_onnx_graphs(tmp_path):
    seen = _random_graphs(tmp_path, onnx_model, ".onnx", _onnx_runs, 200)
    assert seen["folded"] >= 50 and seen["skipped"] >= 18 and seen["verified"] >= 90, seen


def test_random_tflite_graphs(tmp_path):
    seen = _random_graphs(tmp_path, tflite_model, ".tflite", _tflite_runs, 150)
    assert seen["folded"] >= 15 and seen["skipped"] >= 40 and seen["verified"] >= 75, seen


def test_random_graphdef_graphs(tmp_path):
    seen = _random_graphs(tmp_path, graphdef_model, ".pb", _graphdef_runs, 80)
    assert seen["folded"] >= 5 and seen["skipped"] >= 10 and seen["verified"] >= 40, seen
