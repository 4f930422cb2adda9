"""foldscope's one HTML writer: a document of sections with one stylesheet (``document``), and the
three pages written with it: a fold's and a check's report (``fold_page``: ``--html``, the page's
downloads) and a zoo run's table (``zoo_page``: ``zoo --html``)."""
