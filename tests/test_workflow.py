"""The GitHub Pages workflow (.github/workflows/pages.yml): actionlint finds nothing, and it publishes what the README builds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    """Run the environment's actionlint (requirements.txt) on one workflow file."""
    if not ACTIONLINT.exists():
        pytest.fail(f"{ACTIONLINT} not found: run `make setup` (actionlint is in requirements.txt)")
    return subprocess.run([str(ACTIONLINT), "-no-color", str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def steps(job: str) -> list[dict]:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"][job]["steps"]


def test_actionlint_finds_nothing() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "pages.yml"
    broken.write_text(WORKFLOW.read_text().replace("make book", "make book ${{ github.no_such_field }}"))
    result = actionlint(broken)
    assert result.returncode == 1 and "no_such_field" in result.stdout, result.stdout + result.stderr


def test_builds_with_the_readme_command_and_deploys_the_built_html() -> None:
    readme_commands = re.findall(r"^(make \w+)\s+#", (ROOT / "README.md").read_text(), flags=re.MULTILINE)
    assert "make book" in readme_commands
    build = steps("build")
    assert [step["run"] for step in build if "run" in step] == ["make book"]
    upload = [step for step in build if step.get("uses", "").startswith("actions/upload-pages-artifact@")]
    assert [step["with"]["path"] for step in upload] == ["_build/html"]
    assert [step["uses"].split("@")[0] for step in steps("deploy")] == ["actions/deploy-pages"]
