"""foldscope's web page, the frame ``make run`` serves: the page itself is ``foldscope_app/page.py``
(``streamlit run`` either file); this frame runs it on every rerun, as Streamlit runs a script."""

from foldscope_app.page import main

main()
