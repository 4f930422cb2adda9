"""foldscope's web page: the Streamlit script (``foldscope_app/page.py``; ``streamlit run`` it, or
the repository's ``app.py``), its sections (``foldscope_app.sections``), the view-model they lay out
(``foldscope_app.workbench``) and the example models it offers (``foldscope_app.examples``). The
library (``fold``, ``viz``) never imports it."""

from pathlib import Path

#: The Streamlit script of the page, for ``streamlit run``.
PAGE = Path(__file__).resolve().with_name("page.py")
