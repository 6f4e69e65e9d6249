"""The default training recipe of each classification network (``detector classify train``), without torch.

    recipe_for("alexnet", {}, pretrained=False)   # ("alexnet", Recipe(optimizer="sgd", lr=0.01, momentum=0.9, ...))

The book (D2L) trains every network from scratch with plain minibatch SGD (no momentum, no weight decay, a
constant learning rate tuned per section), Xavier-uniform weights in every ``Linear`` and ``Conv2d`` and 10
epochs of Fashion-MNIST: 2,350 steps of 256 images (:data:`BOOK_STEPS`). The rates start from its 0.17 edition
(``train_ch6``, sections 6.6 and 7.1-7.7). Two things change here, both measured on generated shapes' object
crops (docs/experiments/classifier-recipes.md):

- steps, not epochs: a data set of a few thousand crops makes about 30 to 60 steps an epoch, so 10 epochs
  are a tenth of the book's training and the networks without BatchNorm stay near chance. Their recipes ask
  for ``min_steps`` (the book's 2,350; LeNet twice that) and a small set's epochs are raised to reach them
  (``--epochs`` given is kept as it is);
- where the book's optimizer stays at chance even so, another one: LeNet (sigmoid) trains with AdamW; AlexNet
  and VGG with SGD at 0.01 with momentum 0.9 and a cosine decay (torchvision's reference recipe for them); NiN
  and GoogLeNet keep the book's exactly.

Batches stay at the project's 64, so that small data sets still fill one. Input sizes are the project's: the
book resizes Fashion-MNIST to 224 px for AlexNet, VGG and NiN, which a 2-core CPU cannot afford (2 to 15 GFLOPs
a forward pass); here the 64-px object crops where the architecture allows them, LeNet the book's 28 px, and
AlexNet and NiN (which need at least 65 and 67 px) 96 px. VGG is the book's narrow one (``width_divisor`` 4,
its ``small_conv_arch``) unless ``--model-kwargs`` says otherwise.

The BatchNorm networks (ResNets, DenseNet) keep the project's earlier AdamW recipe: the book's SGD gave
ResNet-18 far less here (top-1 0.461 against 0.936). ``--pretrained`` fine-tuning keeps that recipe too
(:data:`FINETUNE`): AdamW at 1e-3 with warm-up and cosine, the body copied and the new head at 10x the
learning rate. Every value of a recipe but ``min_steps`` and ``model_kwargs`` is a field of ``ClassifyConfig``;
the ones given (flags) override the recipe's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
    min_steps: int = 0  # at least this many optimizer steps: a small data set's epochs are raised to reach them
    model_kwargs: dict = field(default_factory=dict)  # the network's keywords when --model-kwargs gives none
    source: str = ""  # where it comes from, for the log line and the README

    def describe(self) -> str:
        opt = f"SGD lr {self.lr:g} momentum {self.momentum:g}" if self.optimizer == "sgd" else f"AdamW lr {self.lr:g}"
        warmup = f"{self.warmup_epochs:g}-epoch warm-up then " if self.warmup_epochs else ""
        init = "Xavier init" if self.init == "xavier" else "PyTorch's init"
        steps = f" (at least {self.min_steps:,} steps)" if self.min_steps else ""
        kwargs = "".join(f", {k} {v}" for k, v in self.model_kwargs.items())
        return (f"{opt} wd {self.weight_decay:g}, {warmup}{self.schedule} lr, {init}, {self.epochs} epochs{steps}, "
                f"{self.img_size} px{kwargs}")

    def epochs_for(self, epochs: int, steps_per_epoch: int) -> int:
        """``epochs``, raised when they make fewer than ``min_steps`` steps of ``steps_per_epoch``."""
        return max(epochs, -(-self.min_steps // max(steps_per_epoch, 1)))


RECIPE_FIELDS = ("optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup_epochs", "epochs", "img_size", "init")

BOOK_STEPS = 2350  # the book's 10 epochs of Fashion-MNIST's 60,000 images at batch 256
_SGD = Recipe("sgd", 0.1)
_ADAMW = Recipe("adamw", 1e-3, weight_decay=5e-4, schedule="cosine", warmup_epochs=1.0, init="default",
                source="the project's measured default; D2L's SGD 0.05 learned less here")
RECIPES = {
    "lenet": replace(_ADAMW, lr=3e-3, weight_decay=0.0, warmup_epochs=0.0, init="xavier", img_size=28,
                     min_steps=2 * BOOK_STEPS, source="the book's network at 28 px; its SGD 0.9 stayed at chance here"),
    "alexnet": replace(_SGD, lr=0.01, momentum=0.9, schedule="cosine", img_size=96, min_steps=BOOK_STEPS,
                       source="D2L 0.17 sec. 7.1's rate, with momentum and cosine"),
    "vgg11": replace(_SGD, lr=0.01, momentum=0.9, schedule="cosine", min_steps=BOOK_STEPS,
                     model_kwargs={"width_divisor": 4}, source="D2L 0.17 sec. 7.2's narrow VGG, with momentum and cosine"),
    "nin": replace(_SGD, lr=0.1, img_size=96, min_steps=BOOK_STEPS, source="D2L 0.17 sec. 7.3, for the book's steps"),
    "googlenet": replace(_SGD, lr=0.1, min_steps=BOOK_STEPS, source="D2L 0.17 sec. 7.4, for the book's steps"),
    # the BatchNorm networks keep the project's AdamW recipe: ResNet-18 reached top-1 0.936 with it on shapes
    # crops, and 0.461 with the book's SGD 0.05 (10 epochs, 500 generated images' crops, measured 2026-11-29)
    "resnet18": _ADAMW,
    "resnet34": _ADAMW,
    "resnet50": _ADAMW,
    "densenet": _ADAMW,
}
LENET_BN = replace(_SGD, lr=1.0, img_size=28, min_steps=BOOK_STEPS, source="D2L 0.17 sec. 7.5")  # lenet with {"batch_norm": true}
FINETUNE = replace(_ADAMW, source="fine-tuning a --pretrained body, the new head at 10x")


def recipe_for(model: str, model_kwargs: dict | None = None, pretrained: bool = False) -> tuple[str, Recipe]:
    """``(name, recipe)``: the recipe ``model`` trains with by default (the fine-tuning one with ``pretrained``;
    an unknown model gets :data:`FINETUNE`'s values, and is refused later)."""
    if pretrained or model not in RECIPES:
        return "fine-tuning", FINETUNE
    if model == "lenet" and (model_kwargs or {}).get("batch_norm"):
        return "lenet with BatchNorm", LENET_BN
    return model, RECIPES[model]
