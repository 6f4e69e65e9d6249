"""Training: the loop (``loop.fit``), detection (``detect.train``) and classification (``classify``) runs,
their settings (``config``), checkpoints written atomically and resumed (``checkpoint``), DDP under torchrun
(``distributed``), and shipping a model with its card (``export``). Imports ``core``, ``data``, ``models``
and ``evaluation``."""
