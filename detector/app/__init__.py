"""The Gradio demo: ``ui`` lays out the page (one function per tab); ``uploads`` reads files, ``catalog`` finds
and caches models, ``detect`` is the Detect tab and ``/detect``, ``figures`` the book's figures, ``examples``
the generated examples. Imports everything below it, never the CLI."""
