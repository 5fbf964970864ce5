"""The GitHub Actions workflows: actionlint finds nothing in them, the Pages workflow
(.github/workflows/pages.yml) publishes what the README builds, and the notebook workflow
(.github/workflows/notebooks.yml) runs the README's notebook check on x86-64 Linux and arm64 macOS."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
PAGES = WORKFLOWS / "pages.yml"
NOTEBOOKS = WORKFLOWS / "notebooks.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"
# GitHub-hosted runner labels: (OS, CPU architecture), as the runner reports them in runner.os and runner.arch.
RUNNERS = {
    "ubuntu-latest": ("Linux", "X64"), "ubuntu-24.04": ("Linux", "X64"), "ubuntu-22.04": ("Linux", "X64"),
    "ubuntu-24.04-arm": ("Linux", "ARM64"), "macos-13": ("macOS", "X64"),
    "macos-latest": ("macOS", "ARM64"), "macos-14": ("macOS", "ARM64"), "macos-15": ("macOS", "ARM64"),
}


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    """Run the environment's actionlint (requirements.txt) on one workflow file."""
    if not ACTIONLINT.exists():
        pytest.fail(f"{ACTIONLINT} not found: run `make setup` (actionlint is in requirements.txt)")
    return subprocess.run([str(ACTIONLINT), "-no-color", str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def job(workflow: Path, name: str) -> dict:
    return yaml.safe_load(workflow.read_text())["jobs"][name]


def steps(name: str) -> list[dict]:
    return job(PAGES, name)["steps"]


@pytest.mark.parametrize("workflow", [PAGES, NOTEBOOKS], ids=lambda path: path.name)
def test_actionlint_finds_nothing(workflow: Path) -> None:
    result = actionlint(workflow)
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "pages.yml"
    broken.write_text(PAGES.read_text().replace("make book", "make book ${{ github.no_such_field }}"))
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


def test_checks_the_notebooks_with_the_readme_command_on_x86_64_linux_and_arm64_macos() -> None:
    # The readers' notebook check, as the README's code block gives it.
    readme = (ROOT / "README.md").read_text()
    readme_checks = set(re.findall(r"^(\.venv/bin/pytest [^#\n]*?--nbval[^#\n]*?)\s+#", readme, flags=re.MULTILINE))
    assert len(readme_checks) == 1, readme_checks
    notebooks = job(NOTEBOOKS, "notebooks")
    assert [step["run"] for step in notebooks["steps"] if "run" in step] == ["make setup", readme_checks.pop()]
    assert notebooks["runs-on"] == "${{ matrix.os }}" and notebooks["strategy"]["fail-fast"] is False
    platforms = {RUNNERS.get(label) for label in notebooks["strategy"]["matrix"]["os"]}
    assert {("Linux", "X64"), ("macOS", "ARM64")} <= platforms, platforms
