"""The page's sections, the only Streamlit code besides the page itself (``foldscope_app/page.py``):
the sidebar's model sources (``foldscope_app.sections.sources``) and one module per tab or panel, each
drawn by a ``*_ui`` function from the model's workbench. They lay out widgets and what the workbench
computed and cached; no numbers are made here."""
