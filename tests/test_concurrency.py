"""Several app sessions at once: threads building and folding different models get their own
results, also while another thread clears Keras' session (as Streamlit did after every script run),
and the Workbench objects the app caches and shares between sessions are not changed by using them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest

from demo import zoo
from demo.workbench import Workbench, inspect_keras
from fold.core.verification import sample_inputs
from fold.frontends.keras.io import load_model
from fold.pipeline import run, verify
from tests.helpers import KERAS

THREADS = 4
#: The zoo's Keras models, big and small, and two playground layers: eight sessions' worth.
ZOO_KERAS = [name for name, entry in zoo.ZOO.items() if entry.format == "keras"]
assert {zoo.ZOO[name].large for name in ZOO_KERAS} == {True, False}
#: (kind, seed) of playground models; different kinds and seeds give different decisions and numbers.
PLAYGROUND = (("Conv2DTranspose", 1), ("Conv2D", 2), ("DepthwiseConv2D", 3), ("SeparableConv2D", 4),
              ("Dense", 5), ("Conv2DTranspose", 6))


def _models() -> dict[str, keras.Model]:
    models = {f"{kind}-{seed}": zoo.playground_model(kind=kind, seed=seed, channels_out=4 + seed)
              for kind, seed in PLAYGROUND}
    models["relu-inside"] = zoo.playground_model(kind="Conv2D", activation=zoo.Activation.INSIDE, seed=7)
    models["dcgan"] = zoo.dcgan_generator(base=16)
    return models


def _summary(wb: Workbench) -> dict:
    """What a session shows of a Workbench: decisions, verification numbers and both outputs."""
    return {
        "decisions": [d.to_dict() for d in wb.result.decisions],
        "max_abs_diff": wb.verification.max_abs_diff,
        "mean_abs_diff": wb.verification.mean_abs_diff,
        "reference": [np.array(a) for a in wb.reference],
        "folded": [np.array(a) for a in wb.folded_outputs],
        "name": wb.name,
    }


def _assert_same(got: dict, want: dict, label: str) -> None:
    assert got["name"] == want["name"], label
    assert got["decisions"] == want["decisions"], label
    assert got["max_abs_diff"] == pytest.approx(want["max_abs_diff"], abs=1e-12), label
    assert got["mean_abs_diff"] == pytest.approx(want["mean_abs_diff"], abs=1e-12), label
    for key in ("reference", "folded"):
        assert len(got[key]) == len(want[key]), label
        for a, b in zip(got[key], want[key]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, err_msg=f"{label}: {key}")


def _weights(model: keras.Model) -> list[np.ndarray]:
    return [np.array(w.numpy()) for w in model.weights]


def _assert_weights_equal(before: list[np.ndarray], model: keras.Model, label: str) -> None:
    after = _weights(model)
    assert len(before) == len(after), label
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b, err_msg=label)


@pytest.fixture(scope="module")
def models() -> dict[str, keras.Model]:
    return _models()


@pytest.fixture(scope="module")
def sequential(models) -> dict[str, dict]:
    return {name: _summary(inspect_keras(name, model, samples=2, seed=3)) for name, model in models.items()}


def test_threads_folding_different_models_get_their_own_results(models, sequential):
    names = list(models) * 2  # every model twice, interleaved across the threads
    start = threading.Barrier(THREADS)

    def session(name: str) -> dict:
        if threading.current_thread().name not in started:
            started.add(threading.current_thread().name)
            start.wait(timeout=60)  # the first jobs of all threads begin together
        return _summary(inspect_keras(name, models[name], samples=2, seed=3))

    started: set[str] = set()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(session, names))
    for name, got in zip(names, results):
        _assert_same(got, sequential[name], name)
    # The sessions' models really differ, so cross-talk would have shown.
    assert len({round(s["max_abs_diff"], 15) for s in sequential.values()} | {len(s["decisions"]) for s in
                                                                                  sequential.values()}) > 2
    assert any(d["status"] == "skipped" for d in sequential["relu-inside"]["decisions"])


def _at_once(job, items: list, threads: int) -> list:
    """``job(item)`` for every item, ``threads`` at a time, the first ones starting together."""
    start = threading.Barrier(min(threads, len(items)))

    def run(item):
        if threading.current_thread().name not in started:
            started.add(threading.current_thread().name)
            start.wait(timeout=120)
        return job(item)

    started: set[str] = set()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, items))


def _session(name: str) -> dict:
    """What one session does for a model of the zoo (a name of ``zoo.ZOO``) or a playground layer:
    build it, fold it, verify it on 2 samples. The zoo's 224x224 architectures are built for
    96x96 inputs here: the same layers, a fifth of the work."""
    if name in zoo.ZOO:
        entry = zoo.ZOO[name]
        model = zoo.application(name, input_size=96) if entry.large else entry.build()
        return _summary(inspect_keras(name, model, samples=2))
    kind, seed = name.split(":")
    return _summary(inspect_keras(name, zoo.playground_model(kind=kind, seed=int(seed), channels_out=5), samples=2))


@pytest.mark.slow
def test_the_zoos_keras_models_built_and_folded_from_8_threads_fold_as_alone():
    names = [*ZOO_KERAS, "Conv2DTranspose:1", "SeparableConv2D:2"]
    assert len(names) == 8 and {"MobileNetV2", "ResNet50", "DenseNet121"} <= set(names)
    alone = {name: _session(name) for name in names}
    together = _at_once(_session, names, threads=8)
    for name, got in zip(names, together):
        _assert_same(got, alone[name], name)


class _ClearingKeras:
    """A thread calling ``keras.backend.clear_session`` over and over, as Streamlit did after every
    script run of every session: it resets Keras' name counters and scopes in every thread at once."""

    def __enter__(self):
        self._stop = threading.Event()
        self.cleared = 0

        def clear():
            while not self._stop.is_set():
                keras.backend.clear_session(free_memory=False)
                self.cleared += 1
                self._stop.wait(0.005)

        self._thread = threading.Thread(target=clear)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_folding_from_threads_while_keras_sessions_are_cleared(models, sequential):
    """The models foldscope builds to verify a fold (each folded layer alone, in one model) name
    every layer themselves: Keras' automatic names restart whenever a session is cleared, and two
    "input_layer"s in one model is an error."""
    names = list(models)
    with _ClearingKeras() as clearing:
        together = _at_once(lambda name: _summary(inspect_keras(name, models[name], samples=2, seed=3)), names,
                            threads=THREADS)
    assert clearing.cleared > 10
    for name, got in zip(names, together):
        _assert_same(got, sequential[name], name)


def test_shared_workbench_is_not_changed_by_concurrent_use(models):
    model = models["dcgan"]
    original_weights = _weights(model)
    wb = inspect_keras("dcgan", model, samples=2, seed=0)  # what the app caches with st.cache_resource
    folded_weights = _weights(wb.result.folded)
    decisions = [d.to_dict() for d in wb.result.decisions]
    folded = [d for d in wb.result.decisions if d.status == "folded"]
    assert folded
    details = {d.layer: wb.detail(d) for d in folded}
    inputs = sample_inputs(KERAS.inputs(model), 2, seed=11)
    expected_outputs = run(KERAS, wb.result.folded, inputs)
    start = threading.Barrier(2)

    def use() -> tuple:
        start.wait(timeout=60)
        check = verify(wb.result, samples=2, seed=5).verification
        got_details = {d.layer: wb.detail(d) for d in folded}
        data = wb.folded_file()
        outputs = run(KERAS, wb.result.folded, inputs)
        return check, got_details, data, outputs

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: use(), range(2)))

    _assert_weights_equal(original_weights, model, "the user's model")
    _assert_weights_equal(original_weights, wb.result.original, "the cached original")
    _assert_weights_equal(folded_weights, wb.result.folded, "the cached folded model")
    assert [d.to_dict() for d in wb.result.decisions] == decisions
    (check_a, details_a, data_a, outputs_a), (check_b, details_b, data_b, outputs_b) = results
    assert check_a.max_abs_diff == check_b.max_abs_diff and check_a.passed
    for got in (details_a, details_b):
        for layer, detail in details.items():
            for field in ("scale", "shift", "range_before", "range_after"):
                np.testing.assert_array_equal(getattr(got[layer], field), getattr(detail, field), err_msg=layer)
    for got in (outputs_a, outputs_b):
        for a, b in zip(got, expected_outputs):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    for data in (data_a, data_b):  # each download is the cached folded model, whole
        assert data[:4] == b"PK\x03\x04"
        reloaded = _load_bytes(data)
        _assert_weights_equal(folded_weights, reloaded, "the downloaded folded model")


def _load_bytes(data: bytes) -> keras.Model:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "folded.keras"
        path.write_bytes(data)
        return load_model(path)


def test_a_shared_workbenchs_views_are_computed_once_for_every_session(models):
    """Sessions asking a shared Workbench for the same view at once get the one object it computed."""
    wb = inspect_keras("dcgan-views", models["dcgan"], samples=2, seed=0)
    start = threading.Barrier(THREADS)

    def session(_) -> tuple:
        start.wait(timeout=60)
        return wb.graph_figure("fold", (), False), wb.pairs_table(), wb.folded_file(), wb.output_png(0, 0, 0)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(session, range(THREADS)))
    for got in results[1:]:
        assert all(a is b for a, b in zip(got, results[0]))
    assert results[0][2][:4] == b"PK\x03\x04" and results[0][3][:4] == b"\x89PNG"


def test_the_converter_and_the_op_view_of_one_shared_model_at_once(models, capsys):
    """Sessions opening the converter's and the op view's sections of one model at once trace it to
    TensorFlow ops side by side; each gets what it gets alone, and what Keras' export prints while
    tracing stays silenced for both, then ends (it once left stdout swallowed for good)."""
    wb = inspect_keras("unet-converter", zoo.unet(), samples=2)
    alone = inspect_keras("unet-converter-alone", wb.result.original, samples=2)
    want = (alone.folded_tflite(), [d.to_dict() for d in alone.op_view().decisions])
    jobs = [lambda: wb.folded_tflite(), lambda: [d.to_dict() for d in wb.op_view().decisions],
            lambda: wb.converter_views()[1].tflite, lambda: [d.to_dict() for d in wb.op_view().decisions]]
    got = _at_once(lambda job: job(), jobs, threads=len(jobs))
    assert got[0] == got[2] == want[0] and got[1] == got[3] == want[1]
    print("after the sessions")
    assert capsys.readouterr().out == "after the sessions\n"
