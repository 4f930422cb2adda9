"""The page's sections, the only Streamlit code besides the frame (``app.py``): the sidebar's model
sources (``sections.sources``) and one module per tab, each drawn by a ``*_ui`` function from the
model's workbench. They lay out widgets and what the workbench computed and cached; no numbers are
made here."""
