"""The Dockerfile: its base image is a build argument, and CI builds and runs the image.

The build itself is .ci/image-check's job (buildah, no Docker engine); these tests keep the
Dockerfile and CI from drifting apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per line, continuation lines joined, comments left out."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def test_every_stage_starts_from_the_base_image_argument_defaulting_to_python_slim() -> None:
    steps = instructions()
    first_from = next(i for i, (word, _) in enumerate(steps) if word == "FROM")
    args = [rest for word, rest in steps[:first_from] if word == "ARG"]
    assert "BASE_IMAGE=python:3.11-slim" in args
    stages = [rest for word, rest in steps if word == "FROM"]
    assert len(stages) == 2
    assert all(re.fullmatch(r"\$\{BASE_IMAGE\}( AS \w+)?", stage) for stage in stages), stages


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [rest for word, rest in instructions() if word == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_ci_builds_the_image_on_its_own_base_and_runs_the_smoke_test_in_it() -> None:
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    check = (ROOT / ".ci" / "image-check").read_text(encoding="utf-8")
    assert ".ci/image-check" in run
    assert "--build-arg BASE_IMAGE=" in check and "bud --quiet --isolation chroot" in check
    assert "<.ci/image_smoke.py" in check
    assert (ROOT / ".ci" / "image_smoke.py").is_file()
