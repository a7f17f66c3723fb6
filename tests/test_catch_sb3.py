"""stable-baselines3 on Catch: its checker on the env, and its PPO through examples/catch_sb3.py for a few hundred
steps. Skipped where SB3 is not installed (`pip install -e '.[rl]'`)."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import ram  # noqa: F401  (registers ram/Catch-v0)

pytest.importorskip("stable_baselines3", reason="stable-baselines3 is not installed: pip install -e '.[rl]'")
from stable_baselines3.common.env_checker import check_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMALL_FOR_NATURE_CNN = "The minimal resolution for an image is 36x36 for the default `CnnPolicy`"


def test_sb3_checker_passes_and_warns_only_that_its_default_cnn_needs_36x36():
    """The image passes every check; the one warning left is about SB3's NatureCNN, which no 24x24 image can avoid
    (examples/catch_sb3.py trains MlpPolicy for that reason). The "unconventional shape" of issue 36 is gone."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gymnasium.make("ram/Catch-v0"))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and messages[0].startswith(SMALL_FOR_NATURE_CNN), messages


def test_sb3_checker_passes_without_a_warning_at_zoom_2_the_same_game_in_larger_cells():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gymnasium.make("ram/Catch-v0", zoom=2))
    assert [str(w.message) for w in caught] == []
    small, big = gymnasium.make("ram/Catch-v0"), gymnasium.make("ram/Catch-v0", zoom=2)
    (a, _), (b, _) = small.reset(seed=3), big.reset(seed=3)
    assert b.shape == (48, 48, 1) and np.array_equal(b[::2, ::2], a) and np.array_equal(b[1::2, 1::2], a)


def test_ppo_trains_a_few_hundred_steps_and_plays_the_test_games(tmp_path):
    out = tmp_path / "ppo.json"
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "catch_sb3.py"), "--games", "20", "--n-envs", "2",
                           "--n-steps", "64", "--test-games", "50", "--out-file", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["n"] == 50 and result["model"] == "sb3-ppo"
    assert 20 * 23 <= result["train_steps"] <= 20 * 23 + 2 * 64  # the budget, rounded up to a whole rollout
    assert result["train_games"] >= 20 and result["train_steps"] >= 23 * result["train_games"]
    assert 0 <= result["catch_rate"] <= 100 and 0 <= result["catch_rate_sampled"] <= 100
    assert f"caught {result['catch_rate']:.1f}%" in done.stdout
    assert result["precision"] == "fp32" and result["machine"]["device"] == "cpu"  # the table's CPU column reads these
