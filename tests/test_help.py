"""`ram train --help` is an overview that fits a screen: the command's options, then every setting of the preset as the
flag that sets it, with the preset's value. `--help SECTION` explains one section, `--help all` is tyro's whole help."""

import shlex

import pytest

from ram.cli import main
from ram.flags import HELP_SECTIONS, parse
from ram.presets import PRESETS


def help_text(capsys, monkeypatch, *args: str, columns: int = 80) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit) as stop:
        main(["train", *args])
    assert stop.value.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("preset", list(PRESETS))
def test_the_overview_fits_80_lines_and_its_settings_are_the_presets_own_flags(preset, capsys, monkeypatch):
    """Read back as a command line, the settings the overview shows build the preset's own config."""
    text = help_text(capsys, monkeypatch, "--preset", preset, "--help")
    lines = text.splitlines()
    assert len(lines) <= 80 and max(map(len, lines)) <= 80
    start = next(i for i, line in enumerate(lines) if line.startswith("  task "))
    shown = " ".join(line[20:] for line in lines[start:] if line.startswith(" " * 20) or line[19:20] == " ")
    args = shlex.split(shown)
    assert len(args) >= 2 * 50  # every section's settings, each a flag and a value
    reads_data = preset in ("auto", "svhn")  # derives its recipe from, or reads, the folder --data names
    built = parse(["--preset", preset, *args]).config(progress=False) if not reads_data else None
    if built is not None:
        assert built == PRESETS[preset][0]


def test_the_overview_names_every_section_and_the_policys_own_settings(capsys, monkeypatch):
    text = help_text(capsys, monkeypatch, "--preset", "mnist-saccade", "--help", columns=100)
    for name in HELP_SECTIONS:
        assert f"\n  {name}" in text
    assert "policy (saccade)" in text and "--saccade-step 2" in text and "--std" not in text
    assert "--std 0.1" in help_text(capsys, monkeypatch, "--help", columns=100)  # mnist's Gaussian policy
    text = help_text(capsys, monkeypatch, "--preset", "catch", "--help", columns=100)
    assert "task (catch)" in text and "--epoch-games 22400" in text and "--pieces" not in text
    text = help_text(capsys, monkeypatch, "--data", "my-images", "--help", columns=100)
    assert "task (images)" in text and "--test-fraction 0.2" in text and "--pieces" not in text


def test_a_sections_help_explains_its_settings_with_the_presets_values(capsys, monkeypatch):
    text = help_text(capsys, monkeypatch, "--help", "policy", "--policy", "saccade", columns=100)
    assert "Pixels per move" in text and "--saccade-step" in text and "--std" not in text
    text = help_text(capsys, monkeypatch, "--preset", "catch", "--help", "model", columns=100)
    assert "(default: max)" in text and "--glimpses" in text and "--lr " not in text
    text = help_text(capsys, monkeypatch, "--data", "my-images", "--help", "task", columns=100)
    assert "the share of each class held out" in text and "--shift" in text and "--pieces" not in text


def test_help_all_is_every_flag_with_its_docstring(capsys, monkeypatch):
    text = help_text(capsys, monkeypatch, "--help", "all", columns=200)
    assert len(text.splitlines()) > 80
    for flag in ("--preset", "--glimpses", "--std", "--lr", "--means-weight", "--pieces", "--out"):
        assert flag in text
