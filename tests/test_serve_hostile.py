"""`ram serve` against hostile input: one test per finding of the review in issue 35, each of which failed before its
fix. Most go through Starlette's TestClient or call the app as uvicorn would; the timeouts need a real uvicorn server,
started in a thread on a free loopback port with short limits."""

from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[serve]'")

ROOT = Path(__file__).resolve().parents[1]


# ---- dependencies ---------------------------------------------------------------------------------------------------

def test_the_dependencies_leave_out_the_versions_the_review_named():
    """starlette 1.0-1.1's TestClient cannot drive httpx2 (the test extra's client); pillow before 10.3 has the
    buffer overflow of CVE-2024-28219, and before 10.0.1 bundles a libwebp without the fix for CVE-2023-4863."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["serve"]]
    wanted = {r.name: r.specifier for r in named}
    assert not wanted["starlette"].contains("1.1.0") and wanted["starlette"].contains("1.2.0")
    assert not wanted["pillow"].contains("10.2.0") and wanted["pillow"].contains("10.3.0")
