"""requirements.lock pins every package the README installs, and agrees with pyproject.toml's ranges.

A pipeline is only as reproducible as its environment: the tiny base's config and tokenizer files carry the
transformers version that wrote them, so another version rebuilds models/base with another hash. The lock is made
from pyproject.toml by the pip-compile command its header records (docs/environment.md); these tests fail when
someone edits one without the other.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

LOCK = REPO / "requirements.lock"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
COMPILE = (
    "pip-compile --allow-unsafe --extra=cpu --extra=test --no-emit-find-links --no-emit-index-url"
    " --output-file=requirements.lock --strip-extras pyproject.toml"
)


def pins() -> dict[str, Version]:
    found = {}
    for number, line in enumerate(LOCK.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
        assert match, f"requirements.lock:{number}: not a `name==version` pin: {line}"
        found[canonicalize_name(match[1])] = Version(match[2])
    return found


def declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *extras["cpu"], *extras["test"]]]


def test_every_requirement_of_pyproject_is_pinned_in_the_lock_within_its_range():
    locked = pins()
    problems = []
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{requirement} is not in requirements.lock")
        elif not requirement.specifier.contains(locked[name], prereleases=True):
            problems.append(f"{requirement}: the lock pins {locked[name]}")
    assert not problems, "pyproject.toml and requirements.lock disagree; run the command in docs/environment.md:\n" + (
        "\n".join(problems)
    )


def test_the_lock_pins_the_cpu_build_of_torch_and_no_cuda_package():
    locked = pins()
    assert locked["torch"] == Version("2.13.0+cpu")
    assert not [name for name in locked if name.startswith("nvidia-") and name != "nvidia-ml-py"]


def test_the_lock_header_is_the_documented_update_command():
    assert COMPILE in LOCK.read_text(encoding="utf-8")
    guide = " ".join((REPO / "docs/environment.md").read_text(encoding="utf-8").split())
    assert "pip-compile --extra cpu --extra test --strip-extras --allow-unsafe" in guide


def test_the_environment_running_these_tests_was_installed_from_the_lock():
    # CI installs by the README's command; a package at another version here means that command no longer installs
    # what the lock says, and the committed dvc.lock's hashes may not be reproduced.
    different = []
    for name, version in pins().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            different.append(f"{name}: not installed (lock {version})")
            continue
        if installed != version:
            different.append(f"{name}: {installed} installed, lock {version}")
    assert not different, "\n".join(different)
