import pytest

from detector.data.synth import synth_dataset


@pytest.fixture(scope="session")
def shapes_yaml(tmp_path_factory):
    """A small generated shapes data set: 16 train and 6 val images at 96 px."""
    return synth_dataset(tmp_path_factory.mktemp("shapes"), "shapes", train=16, val=6, seed=0, size=96, workers=1)
