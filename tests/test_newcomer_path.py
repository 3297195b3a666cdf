"""The README's two first commands, the Makefile and .ci/run must stay in sync."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readme_starts_with_demo_and_test_commands():
    text = (ROOT / "README.md").read_text()
    assert text.index("```bash") < 200, "the two commands must be on the README's first screen"
    assert _readme_commands() == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line.strip() for line in ci if line.strip() and not line.strip().startswith(("#", "set ", "cd ", "export "))]
    assert commands == [_readme_commands()[1]]


def test_make_targets_install_and_run():
    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo: install\n\t(.+)$", makefile, re.M).group(1)
    test = re.search(r"^test: install\n\t(.+)$", makefile, re.M).group(1)
    assert "-m d3s_vot.demo" in demo
    assert "-m pytest" in test
    assert 'pip install --quiet -e ".[all]"' in makefile
