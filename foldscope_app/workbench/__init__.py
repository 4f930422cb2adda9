"""The page's view-model, headless: one workbench per fold result (or per check) with every view the
page derives from it, memoized (``workbench``, ``memo``), the page's views as data (``fold_view``,
``quant_view``, ``why_view``, ``node_panel``), the converter comparison and the ONNX peers on the
page's inputs, and the "why it works" walkthrough. Nothing here imports Streamlit
(``foldscope_app.sections`` lays it out), and nothing in ``fold`` or ``viz`` imports this package."""
