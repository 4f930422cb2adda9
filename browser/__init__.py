"""foldscope's page in a real browser: the server and headless chromium (``browser.server``), reading
and driving the page (``browser.page``) and its interactive graph (``browser.svg_graph``). Shared by the
browser tests (``tests/test_browser.py``) and the page's benchmark (``bench/bench_page.py``); needs
Playwright, and nothing here imports the app."""
