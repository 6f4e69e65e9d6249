"""The default training recipe of each classification network (``detector classify train``), without torch.

    recipe_for("alexnet", {}, pretrained=False)   # Recipe(optimizer="sgd", lr=0.01, ..., source="D2L 0.17 sec. 7.1")

The book (D2L) trains every network from scratch with plain minibatch SGD (no momentum, no weight decay, a
constant learning rate tuned per section), Xavier-uniform weights in every ``Linear`` and ``Conv2d`` and 10
epochs. The learning rates here are those of its 0.17 edition (``train_ch6``, sections 6.6 and 7.1-7.7; the 1.0
edition's sections 7.6 and 8.1-8.7 train the same networks at other rates, mostly 0.01 to 0.1). Its batches
(128 or 256) are not kept: the project's default 64 stays, so that small data sets still fill a batch. Nor are
its input sizes:
the book resizes Fashion-MNIST to 224 px for AlexNet, VGG and NiN and to 96 px for the later networks, which the
project's 2-core CPU cannot afford for the 224-px ones (2 to 15 GFLOPs a forward pass); here every network
takes the project's 64-px object crops where its architecture allows them, LeNet the book's 28 px, and AlexNet
and NiN (which need at least 65 and 67 px) 96 px, the book's own size for the later chapters.

The BatchNorm networks (ResNets, DenseNet) keep the project's earlier AdamW recipe instead: the book's SGD
gave ResNet-18 far less here (top-1 0.461 against 0.936 on generated shapes' crops).
``--pretrained`` fine-tuning keeps that recipe too (:data:`FINETUNE`): AdamW at 1e-3 with warm-up
and cosine, the body copied and the new head at 10x the learning rate. Every value of a recipe is a field of
``ClassifyConfig``; the ones given (flags) override the recipe's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "cosine")  # after the warm-up: the peak lr throughout, or cosine down to lr / 100
INITS = ("xavier", "default")  # the book's xavier_uniform_ for Linear/Conv2d weights, or PyTorch's own


@dataclass(frozen=True)
class Recipe:
    optimizer: str
    lr: float
    momentum: float = 0.0  # SGD only
    weight_decay: float = 0.0  # on weights, not on biases and norm parameters
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    epochs: int = 10
    img_size: int = 64
    init: str = "xavier"
    source: str = ""  # where it comes from, for the log line and the README

    def describe(self) -> str:
        opt = f"SGD lr {self.lr:g} momentum {self.momentum:g}" if self.optimizer == "sgd" else f"AdamW lr {self.lr:g}"
        warmup = f"{self.warmup_epochs:g}-epoch warm-up then " if self.warmup_epochs else ""
        init = "Xavier init" if self.init == "xavier" else "PyTorch's init"
        return (f"{opt} wd {self.weight_decay:g}, {warmup}{self.schedule} lr, {init}, {self.epochs} epochs, "
                f"{self.img_size} px")


RECIPE_FIELDS = ("optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup_epochs", "epochs", "img_size", "init")

_SGD = Recipe("sgd", 0.1)
_ADAMW = Recipe("adamw", 1e-3, weight_decay=5e-4, schedule="cosine", warmup_epochs=1.0, init="default",
                source="the project's measured default; D2L's SGD 0.05 learned less here")
RECIPES = {
    "lenet": replace(_SGD, lr=0.9, img_size=28, source="D2L 0.17 sec. 6.6"),
    "alexnet": replace(_SGD, lr=0.01, img_size=96, source="D2L 0.17 sec. 7.1"),
    "vgg11": replace(_SGD, lr=0.05, source="D2L 0.17 sec. 7.2"),
    "nin": replace(_SGD, lr=0.1, img_size=96, source="D2L 0.17 sec. 7.3"),
    "googlenet": replace(_SGD, lr=0.1, source="D2L 0.17 sec. 7.4"),
    # the BatchNorm networks keep the project's AdamW recipe: ResNet-18 reached top-1 0.936 with it on shapes
    # crops, and 0.461 with the book's SGD 0.05 (10 epochs, 500 generated images' crops, measured 2026-11-29)
    "resnet18": _ADAMW,
    "resnet34": _ADAMW,
    "resnet50": _ADAMW,
    "densenet": _ADAMW,
}
LENET_BN = replace(_SGD, lr=1.0, img_size=28, source="D2L 0.17 sec. 7.5")  # lenet with {"batch_norm": true}
FINETUNE = replace(_ADAMW, source="fine-tuning a --pretrained body, the new head at 10x")


def recipe_for(model: str, model_kwargs: dict | None = None, pretrained: bool = False) -> tuple[str, Recipe]:
    """``(name, recipe)``: the recipe ``model`` trains with by default (the fine-tuning one with ``pretrained``;
    an unknown model gets :data:`FINETUNE`'s values, and is refused later)."""
    if pretrained or model not in RECIPES:
        return "fine-tuning", FINETUNE
    if model == "lenet" and (model_kwargs or {}).get("batch_norm"):
        return "lenet with BatchNorm", LENET_BN
    return model, RECIPES[model]
