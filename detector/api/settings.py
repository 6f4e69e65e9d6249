"""The settings of every mode, as dataclasses whose fields are the API's keywords and the CLI's flags (one place
for each default and its help), and the checks they share. No torch here: ``detector --help`` reads them.

    from detector.api.settings import TrainConfig
    cfg = TrainConfig(model="tiny_ssd", data="data/shapes", epochs=5)      # Detector(...).train(config=cfg)
"""

from detector.core.thresholds import CONF, IOU, MAX_DET
from detector.data.images import IMAGE_SUFFIXES, MAX_PIXELS, VIDEO_SUFFIXES
from detector.engine.config import (
    DEVICE_HELP,
    ClassifyConfig,
    ConfigError,
    TrainConfig,
    check_flags,
    read_recipe,
    recipe_under_flags,
)
from detector.engine.modes import EvalConfig, ExportConfig, PredictConfig

__all__ = ["CONF", "DEVICE_HELP", "IMAGE_SUFFIXES", "IOU", "MAX_DET", "MAX_PIXELS", "VIDEO_SUFFIXES",
           "ClassifyConfig", "ConfigError", "EvalConfig", "ExportConfig", "PredictConfig", "TrainConfig",
           "check_flags", "read_recipe", "recipe_under_flags"]
