import pytest

from tests.backends import saved


@pytest.fixture(scope="session")
def saved_files(tmp_path_factory):
    """The .keras files and configs of `saved.py`, written once on this backend."""
    folder = tmp_path_factory.mktemp("saved")
    return folder, saved.write(folder)
