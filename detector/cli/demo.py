"""``detector demo`` (and ``python app.py``, which hands its arguments here): the Gradio app on 127.0.0.1:7860.

    detector demo                                   # the bundled default model
    detector demo --port 8000 --weights runs/shapes/best.pt
    detector demo --host 0.0.0.0                    # reachable from other machines (no public link)
"""

from __future__ import annotations

import argparse

from detector.cli.common import bounded_int, file_size


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=bounded_int(1, 65535), default=7860)
    parser.add_argument("--weights", "--model", dest="weights", help="the model to open with: a checkpoint, an .onnx "
                        "file or a zoo name torchvision:NAME (default: models/tinyssd-shapes.onnx)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link (off by default)")
    parser.add_argument("--queue-size", type=bounded_int(1, 100_000), default=64,
                        help="requests waiting at most; more are refused with 'queue full' (bounds memory)")
    parser.add_argument("--max-file-size", type=file_size, default="50mb", help="largest upload accepted (50mb, "
                        "1gb, ...)")
    parser.add_argument("--upload-budget", type=file_size, default="1gb", help="uploads kept on the server in all; "
                        "beyond it the oldest (10 minutes or more) are removed, then uploads are refused")
    parser.add_argument("--client-upload-budget", type=file_size, default="256mb", help="the same, per client "
                        "address (behind a proxy that hides addresses, give it the --upload-budget)")


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="serve the Gradio demo (app.py) on 127.0.0.1:7860")
    add_demo_arguments(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from detector.app.ui import serve  # imports gradio and torch: only for this command

    serve(args)
    return 0
