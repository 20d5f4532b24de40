"""Shared test settings: hypothesis profiles, float64 helpers, the reference corpus."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# CI is derandomized (the same examples every run, so it never flakes) and bounded in size.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parent.parent
SHARED_CORPUS = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture
def shakespeare_path() -> Path:
    """The reference corpus beside the checkout; tests that need it skip without it."""
    if not SHARED_CORPUS.exists():
        pytest.skip("tinyshakespeare.txt is not beside the checkout")
    return SHARED_CORPUS
