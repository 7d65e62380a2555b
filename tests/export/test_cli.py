"""``tfmcourse export …`` and the LMS options of ``tfmcourse grade`` on the command line."""

from __future__ import annotations

import zipfile

from tests.export.conftest import ROOT
from tfmcourse.cli import main


def test_export_gradescope_writes_the_zip(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["export", "gradescope", "--lesson", "6", "--out", str(tmp_path / "ag.zip")]) == 0
    assert "Gradescope autograder written" in capsys.readouterr().out
    with zipfile.ZipFile(tmp_path / "ag.zip") as z:
        assert {"setup.sh", "run_autograder", "tfmcourse-grader.json"} <= set(z.namelist())


def test_export_prairielearn_takes_exactly_one_lesson(tmp_path, capsys):
    args = ["export", "prairielearn", "--root", str(ROOT), "--out", str(tmp_path / "q")]
    assert main([*args, "--lesson", "6", "--lesson", "7"]) == 2
    assert "exactly one --lesson" in capsys.readouterr().err
    assert main([*args, "--lesson", "6", "--image", "org/img:1"]) == 0
    assert "docker build -t org/img:1" in capsys.readouterr().out
    assert (tmp_path / "q" / "info.json").is_file()


def test_export_of_an_ungraded_lesson_fails_with_status_2(tmp_path, capsys):
    assert (
        main(["export", "gradescope", "--root", str(ROOT), "--lesson", "0", "--out", str(tmp_path / "a.zip")])
        == 2
    )
    assert "has no graded exercises" in capsys.readouterr().err


def test_lms_options_need_each_other_and_secure(tmp_path, capsys):
    assert main(["grade", str(tmp_path), "--lms-csv", str(tmp_path / "x.csv")]) == 2
    assert "--roster and --lms-csv go together, with --secure" in capsys.readouterr().err


def test_lms_csv_is_never_written_inside_the_graded_folder(tmp_path, capsys):
    (tmp_path / "roster.csv").write_text("Student,ID\nA,1\n")
    args = ["grade", "--secure", str(tmp_path), "--roster", str(tmp_path / "roster.csv")]
    assert main([*args, "--lms-csv", str(tmp_path / "canvas.csv")]) == 2
    assert "inside the graded folder" in capsys.readouterr().err
    assert not (tmp_path / "canvas.csv").exists()
