"""Docs that drift from the code: file references, test names, counts, the README's commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER_DOCS = [ROOT / "README.md", ROOT / "pyproject.toml", ROOT / "sample_repo" / "repogen.toml",
             *sorted((ROOT / "docs").glob("*.md"))]


def test_referenced_docs_and_tests_exist() -> None:
    missing = []
    for doc in USER_DOCS:
        text = doc.read_text(encoding="utf-8")
        for ref in sorted(set(re.findall(r"\b((?:docs|tests|dev)/[A-Za-z0-9_./-]+\.(?:md|py))", text))):
            if not (ROOT / ref).is_file():
                missing.append(f"{doc.relative_to(ROOT)}: {ref}")
        for path, test in re.findall(r"\b(tests/[A-Za-z0-9_/]+\.py)::([A-Za-z0-9_]+)", text):
            if (ROOT / path).is_file() and f"def {test}(" not in (ROOT / path).read_text(encoding="utf-8"):
                missing.append(f"{doc.relative_to(ROOT)}: {path}::{test}")
    assert missing == []


def test_team_notes_are_not_user_docs() -> None:
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert "not user docs" not in doc.read_text(encoding="utf-8"), doc
    assert (ROOT / "dev" / "TEAM.md").is_file()


def test_readme_op_count_is_what_repogen_ops_lists() -> None:
    out = subprocess.run([sys.executable, "-m", "repogen.cli", "ops", "--json"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=True).stdout
    count = json.loads(out)["count"]
    (claimed,) = re.findall(r"`repogen ops` lists (\d+) op spellings", (ROOT / "README.md").read_text())
    assert int(claimed) == count, f"README.md says {claimed} op spellings, `repogen ops` lists {count}: update it"


def test_readme_commands() -> None:
    """Command 1 and the test command use separate venvs; .ci/run is exactly the README's test command."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    install = next(b for b in blocks if b.startswith("# 1.")).strip().splitlines()[-1]
    test = next(b for b in blocks if b.startswith("# 2.")).strip().splitlines()[-1]
    venv = lambda cmd: re.match(r"python3 -m venv (\S+) ", cmd).group(1)  # noqa: E731
    assert venv(install) == ".venv" and venv(test) != venv(install)
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert venv(test) in ignored and "/model_repository/" in ignored
    # the serve extra the README's next step installs exists
    assert re.search(r'^serve = \["nvidia-pytriton==0\.7\.0", "paddlepaddle==[\d.]+", "numpy==1\.26\.4"\]',
                     (ROOT / "pyproject.toml").read_text(), re.M)
    assert '.venv/bin/pip install -q -e ".[serve]"' in readme
