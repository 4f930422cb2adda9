"""What the app and the demos need beyond the library: the seed note's example, the model zoo,
the workbench (one model's fold and every view the page derives from it, memoized), the page's
views as data, the converter comparison and the "why it works" walkthrough. Headless: nothing
here imports Streamlit (``sections/`` lays it out), and nothing in ``fold`` imports this package."""
