"""The real load stage refuses bad CSVs with one line, and keeps the previous dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

# A user's CSV as the real load stage reads it: each is refused with one line naming the
# problem, and the previous data/raw/dataset.csv stays.
BAD_CSVS = {
    "header-only": ("f1,f2,label\n", "has a header but no data rows"),
    "inf": (
        "f1,f2,label\n1,2,a\n3,4,a\n5,inf,b\n7,8,b\n",
        "column 'f2' has 1 infinite value(s)",
    ),
    "1e400": (
        "f1,f2,label\n1,2,a\n1e400,4,a\n5,6,b\n7,8,b\n",
        "column 'f1' has 1 infinite value(s) (inf, or beyond the float range), first at data row 2",
    ),
    "duplicate": (
        "f1,f2,f1,label\n1,2,3,a\n3,4,5,a\n5,6,7,b\n7,8,9,b\n",
        "column 'f1' appears more than once in the header",
    ),
}


@pytest.fixture(scope="module")
def load_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.repository import copy_repository

    return copy_repository(tmp_path_factory.mktemp("load") / "project")


@pytest.mark.integration
@pytest.mark.parametrize("case", list(BAD_CSVS))
def test_the_load_stage_refuses_bad_csvs(load_project: Path, case: str) -> None:
    import yaml

    from tests.support.tools import run

    content, message = BAD_CSVS[case]
    (load_project / "data" / "external" / f"{case}.csv").write_text(content)
    params = yaml.safe_load((load_project / "params.yaml").read_text())
    params["load"].update(source="csv", csv_path=f"data/external/{case}.csv", target_column="label")
    params_file = load_project / f"params-{case}.yaml"
    params_file.write_text(yaml.safe_dump(params))
    previous = load_project / "data" / "raw" / "dataset.csv"
    previous.parent.mkdir(parents=True, exist_ok=True)
    previous.write_text("the previous dataset\n")

    proc = run(
        ["python", "-m", "stages.load", "--params", params_file], cwd=load_project, check=False
    )
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert previous.read_text() == "the previous dataset\n"
