"""The Gradio demo: ``python app.py [--port 7860] [--weights models/tinyssd-shapes.pt] [--host 127.0.0.1]``.

Serves on http://127.0.0.1:7860 with the bundled default model. The same as ``detector demo``: the arguments
go to the CLI's demo command (``detector/cli/demo.py``); the page is ``detector/app/ui.py``.
"""

import sys

from detector.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
