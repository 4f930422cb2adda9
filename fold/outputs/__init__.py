"""What a run hands to people and other tools: the ``--report`` JSON and the text tables
(``fold.outputs.report``), the Model Explorer files (``fold.outputs.model_explorer``), a fold's and a
check's tables and figures as data (``fold.outputs.result_views``), a zoo run as JUnit XML
(``fold.outputs.junit``) and the one HTML writer
(``fold.outputs.html``)."""
