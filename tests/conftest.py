import pathlib
import sys

TESTS = pathlib.Path(__file__).parent
sys.path.insert(0, str(TESTS))

REPO = TESTS.parent
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()

import pytest  # noqa: E402  (after the sys.path entry for the helpers)


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """``../shared/data`` (full LOBSTER days, Databento fixtures); present in CI."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present (a fresh clone without ../shared)")
    return SHARED_DATA
