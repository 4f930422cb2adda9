"""foldscope: find, fold, explain and verify BatchNorm folding in real models.

    from fold import FRONTENDS, check_files, fold, fold_file, fold_files, verify

    run = fold_files("model.onnx", "model_folded.onnx")   # what `foldscope model.onnx` does and prints
    run.verdict                                           # pass, fail or inconclusive (fold.outputs.report.fold_text)
    checked = check_files("model.onnx", "model_sim.onnx") # `foldscope check`: another tool's fold
    checked.verdict, checked.checked.verification.reason  # the reason names the worst layer

    result = fold_file("model.onnx")                 # .keras/.h5/.hdf5, .pb, .tflite, ...
    checked = verify(result, samples=8, seed=0)  # .verification.verdict: pass, fail or inconclusive

    keras = FRONTENDS["keras"].frontend()            # a model already in memory
    result = fold(keras, model)

    report = quant_report(result)                    # what int8 weights lose, and the remedies

``fold.core`` (the math, the kinds table, the rules, the graph schema, verification and
the result type) imports only NumPy and networkx; a frontend's framework is imported the
first time its format is used, so ``viz`` and other light users never pay for TensorFlow.
"""

from fold.core.affine import Affine, bn_affine, fold_kernel
from fold.core.result import FoldResult
from fold.core.rules import Decision
from fold.core.errors import FoldError, MissingExtra, UnsafeModelError
from fold.frontends.formats import FRONTENDS, SUFFIXES, Frontend
from fold.engine.pipeline import Checked, FoldRun, fold, fold_file, fold_files, load, run, verify, verify_models
from fold.tools.check import CheckResult, check_files
from fold.tools.quantization import QuantReport, quant_report

__all__ = ["FRONTENDS", "SUFFIXES", "Affine", "CheckResult", "Checked", "Decision", "FoldError", "FoldResult",
           "FoldRun", "Frontend", "MissingExtra", "QuantReport", "UnsafeModelError", "bn_affine", "check_files",
           "fold", "fold_file", "fold_files", "fold_kernel", "load", "quant_report", "run", "verify",
           "verify_models"]
