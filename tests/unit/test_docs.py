"""README stays a front door and every page it leads to is there: links, anchors, modules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.repository import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """The anchor GitHub, GitLab and Forgejo give a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {
        slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")
    }


def relative_links(page: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(page.read_text())
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


def test_readme_reads_in_five_minutes() -> None:
    # The DAG block grows with every table a user tracks (`make readme-dag`): not counted.
    text = re.sub(
        r"<!-- dag:start.*?<!-- dag:end -->", "", (REPO / "README.md").read_text(), flags=re.S
    )
    lines = text.splitlines()
    assert len(lines) <= 180, (
        f"README.md has {len(lines)} lines besides the DAG; move some to docs/"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no {resolved.relative_to(REPO)}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_every_page_is_in_the_index() -> None:
    index = (REPO / "docs" / "index.md").read_text()
    pages = {page.name for page in PAGES if page.parent.name == "docs"} - {"index.md"}
    missing = {name for name in pages if f"]({name})" not in index}
    assert not missing, f"docs/index.md does not list: {sorted(missing)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_python_module_the_docs_run_exists(page: Path) -> None:
    found = re.findall(r"python -m ([a-z_][a-z0-9_.]*)", page.read_text())
    modules = {m for m in found if not m.endswith(".")}  # `python -m stages.<name>`
    project = {m for m in modules if m.split(".")[0] in {"stages", "mlpipeline", "zenml_pipeline"}}
    missing = [
        m
        for m in project
        if not (REPO / Path(*m.split("."))).with_suffix(".py").is_file()
        and not (REPO / Path(*m.split(".")) / "__main__.py").is_file()
    ]
    assert not missing, f"{page.name} runs modules that do not exist: {sorted(missing)}"


# `mlpipeline <group> <command> [--option ...]` as README, docs/, the Makefile and the CI files
# write it, up to a comment or the end of a code span.
COMMAND_LINE = re.compile(r"(?<![\w/.-])mlpipeline ([a-z-]+) ([a-z-]+)([^`#\n|]*)")
COMMAND_SOURCES = [
    *PAGES,
    REPO / "Makefile",
    REPO / ".gitlab-ci.yml",
    *sorted((REPO / ".github" / "workflows").glob("*.yml")),
    *sorted((REPO / ".forgejo" / "workflows").glob("*.yml")),
]


@pytest.mark.parametrize("page", COMMAND_SOURCES, ids=lambda page: page.name)
def test_every_command_line_the_docs_give_exists(page: Path) -> None:
    """Each `mlpipeline GROUP COMMAND --option` names a command and options it has."""
    from mlpipeline.cli import COMMANDS, main

    text = page.read_text()
    assert "mlpipeline.commands." not in text, f"{page.name} names a module, not the command"
    wrong = []
    for group, name, rest in COMMAND_LINE.findall(text):
        if group not in COMMANDS or name not in COMMANDS[group][1]:
            wrong.append(f"mlpipeline {group} {name}")
            continue
        command = main.commands[group].get_command(None, name)  # type: ignore[attr-defined]
        options = {option for param in command.params for option in param.opts}
        wrong += [
            f"mlpipeline {group} {name} {option}"
            for option in re.findall(r"(?<!\S)(--?[a-z][a-z-]*)", rest)
            if option not in {*options, "--help", "-h"}
        ]
    assert not wrong, f"{page.name} gives commands or options that do not exist: {wrong}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_documented_project_image_build_names_its_base_image(page: Path) -> None:
    # docker/Dockerfile's default base comes from Docker Hub: offline, a build works only
    # with BASE_IMAGE pointing at tests/standins/offline-base.sh's stand-in, as make
    # test-docker does.
    commands = re.findall(r"docker build(?:\\\n|[^\n])*", page.read_text())
    for command in (c for c in commands if "docker/Dockerfile" in c):
        assert "--build-arg BASE_IMAGE=" in command, f"{page.name}: {command}"
