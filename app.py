"""The Gradio demo: ``python app.py [--port 7860] [--weights models/tinyssd-shapes.pt] [--host 127.0.0.1]``.

Serves on http://127.0.0.1:7860 with the bundled default model; see ``detector/demo_ui.py``.
"""

from detector.demo_ui import main

if __name__ == "__main__":
    main()
