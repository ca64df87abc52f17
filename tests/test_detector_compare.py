"""`benchmarks.detector_compare` runs the daemon's pipeline once per value of the varied setting."""

from __future__ import annotations

import pytest

from benchmarks import detector_compare


def test_varied_setting_gives_one_row_per_value(capsys: pytest.CaptureFixture) -> None:
    assert detector_compare.main(["--rounds", "1", "--frames", "12", "--vary", "face.inner_view=0,0.87"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[0] for row in rows] == ["0", "0.87"]
    assert all(float(row[1]) > 0 and float(row[-1]) > 0 for row in rows)  # fps and infer ms measured


def test_several_varied_settings_go_together_value_by_value(capsys: pytest.CaptureFixture) -> None:
    assert detector_compare.main(["--rounds", "1", "--frames", "12", "--vary", "face.inner_view=0,0.87",
                                  "--vary", "face.every_n_frames=1,2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[0] == "face.inner_view/face.every_n_frames"
    assert [line.split()[0] for line in lines[2:]] == ["0/1", "0.87/2"]


@pytest.mark.parametrize("vary", [["face.inner_view=0"], ["=1,2"], ["face.inner_view"],
                                  ["face.inner_view=0,0.87", "face.every_n_frames=1,2,3"]])
def test_bad_vary_is_one_line_and_exit_2(vary: list[str], capsys: pytest.CaptureFixture) -> None:
    assert detector_compare.main([arg for item in vary for arg in ("--vary", item)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "two or more values" in err[0]
