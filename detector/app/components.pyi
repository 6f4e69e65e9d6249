"""Gradio inputs that let a bad value reach the handler, which names it in the page (Gradio's own checks answer a
bad value from raw HTTP with a bare "Error"). They look and behave in the page as Gradio's own."""

from __future__ import annotations

import gradio as gr


class Tolerant:
    """A component whose value reaches the handler even when Gradio's own check of it fails (a slider's "nan", a
    number past its maximum, a file that is not an image, a choice not in the list: all possible over raw HTTP),
    so that the handler names the problem in the page instead of Gradio's bare "Error"."""

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception:  # noqa: BLE001 - whatever the check raises, the handler says it
            path = getattr(payload, "path", None)
            return str(path) if path else getattr(payload, "root", payload)

from gradio.events import Dependency

class SafeImage(Tolerant, gr.Image):
    def get_block_name(self) -> str:
        return "image"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class Slider(Tolerant, gr.Slider):
    def get_block_name(self) -> str:
        return "slider"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class Number(Tolerant, gr.Number):
    def get_block_name(self) -> str:
        return "number"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class Dropdown(Tolerant, gr.Dropdown):
    def get_block_name(self) -> str:
        return "dropdown"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class CheckboxGroup(Tolerant, gr.CheckboxGroup):
    def get_block_name(self) -> str:
        return "checkboxgroup"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component