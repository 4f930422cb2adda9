"""The models the page offers, built in code from a seed: the seed note's example (``seed``, its
TConv engine in NumPy ``tconv``), the model zoo of Keras architectures and ONNX graphs
(``model_zoo``, the ONNX ones built with ``onnx.helper`` in ``onnx_zoo``)."""
