"""``detector demo`` (and ``python app.py``, which hands its arguments here): the Gradio app on 127.0.0.1:7860.

    detector demo                                   # the bundled default model
    detector demo --port 8000 --weights runs/shapes/best.pt
    detector demo --host 0.0.0.0                    # reachable from other machines (no public link)
"""

from __future__ import annotations

import argparse


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--weights", "--model", dest="weights", help="the model to open with: a checkpoint, an .onnx "
                        "file or a zoo name torchvision:NAME (default: models/tinyssd-shapes.onnx)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link (off by default)")
    parser.add_argument("--queue-size", type=int, default=64,
                        help="requests waiting at most; more are refused with 'queue full' (bounds memory)")
    parser.add_argument("--max-file-size", default="50mb", help="largest upload accepted")


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="serve the Gradio demo (app.py) on 127.0.0.1:7860")
    add_demo_arguments(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from detector.app.ui import serve  # imports gradio and torch: only for this command

    serve(args)
    return 0
