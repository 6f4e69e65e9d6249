import pytest

from detector.data.synth import synth_dataset


@pytest.fixture(scope="session")
def shapes_yaml(tmp_path_factory):
    """A small generated shapes data set: 16 train and 6 val images at 96 px."""
    return synth_dataset(tmp_path_factory.mktemp("shapes"), "shapes", train=16, val=6, seed=0, size=96, workers=1)


@pytest.fixture(scope="session")
def shipped_onnx(tmp_path_factory):
    """``models/tinyssd-shapes.pt`` (trained tiny_ssd_plus, 256 px) exported to ONNX with a dynamic batch axis."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from pathlib import Path

    from detector.engine.onnx_export import export_onnx

    shipped = Path(__file__).resolve().parents[1] / "models" / "tinyssd-shapes.pt"
    out = tmp_path_factory.mktemp("onnx") / "tinyssd-shapes.onnx"
    export_onnx(shipped, out, dynamic_batch=True, log=lambda s: None)
    return shipped, out
