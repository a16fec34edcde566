import os

import pytest

from bnncore.data import DataError, find_dataset_dir, load_dataset


def _require(name):
    try:
        return find_dataset_dir(name)
    except DataError as e:
        msg = f"dataset {name} not found (set BNN_DATA_DIR): {e}"
        if os.environ.get("CI"):
            pytest.fail(msg)  # in CI a missing dataset is a failure, never a silent skip
        pytest.skip(msg)


@pytest.fixture(scope="session")
def mnist_dir():
    return _require("mnist")


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    return load_dataset("mnist", folder=mnist_dir)


@pytest.fixture(scope="session")
def fashion(mnist_dir):
    return load_dataset("fashion-mnist", folder=_require("fashion-mnist"))
