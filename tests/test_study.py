"""``tokembed study``: the config (files, presets, bad values), the equal-budget rule, and a tiny study end to end."""

import csv
import json
import math
import re

import pytest

from tokembed.errors import ConfigError
from tokembed.study import DESIGNS, PRESETS, RESULT_COLUMNS, StudyConfig, design_overrides, steps_for_budget

# -- config ------------------------------------------------------------------------------


def test_defaults_cover_the_issue_grid():
    cfg = StudyConfig()
    assert cfg.tokenizers == ["byte", "bytebpe", "unigram", "wordpiece", "morph"]
    assert cfg.designs == ["untied", "tied", "tied_bias", "factorized", "adaptive"]
    assert cfg.vocab_for("byte") is None and cfg.vocab_for("unigram") == 1024


def test_toml_and_yaml_files_load_the_same_config(tmp_path):
    (tmp_path / "s.toml").write_text(
        '[study]\npreset = "tiny"\ndesigns = ["tied"]\nseeds = [0, 1]\n[study.vocab_size]\ndefault = 300\nbytebpe = 500\n'
    )
    (tmp_path / "s.yaml").write_text("preset: tiny\ndesigns: [tied]\nseeds: [0, 1]\nvocab_size: {default: 300, bytebpe: 500}\n")
    a = StudyConfig.from_file(tmp_path / "s.toml")
    b = StudyConfig.from_file(tmp_path / "s.yaml")
    assert a == b
    assert a.designs == ["tied"] and a.seeds == [0, 1] and a.d_model == PRESETS["tiny"]["d_model"]
    assert a.vocab_for("bytebpe") == 500 and a.vocab_for("unigram") == 300


def test_file_keys_override_the_cli_preset(tmp_path):
    (tmp_path / "s.toml").write_text("d_model = 48\n")
    cfg = StudyConfig.from_file(tmp_path / "s.toml", preset="quick")
    assert cfg.d_model == 48 and cfg.budget_bytes == PRESETS["quick"]["budget_bytes"]


@pytest.mark.parametrize(
    "text, key",
    [
        ("d_model = 0\n", "d_model"),
        ("d_model = 30\nn_heads = 4\n", "d_model"),
        ('designs = ["tied", "hashed_magic"]\n', "designs"),
        ("budget_bytes = -5\n", "budget_bytes"),
        ("seeds = []\n", "seeds"),
        ("cutoffs = [0.5, 0.25]\n", "cutoffs"),
        ("lr = 2.0\n", "lr"),
        ("[vocab_size]\nbytebpe = 3\n", "vocab_size.bytebpe"),
        ("batch_sise = 3\n", "batch_sise"),
        ('preset = "huge"\n', "preset"),
        ('device = "tpu"\n', "device"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(tmp_path, text, key):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        StudyConfig.from_file(p)
    assert key in str(e.value) and str(p) in str(e.value)


def test_unparsable_and_unknown_files(tmp_path):
    (tmp_path / "x.toml").write_text("d_model = = 3\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        StudyConfig.from_file(tmp_path / "x.toml")
    (tmp_path / "x.ini").write_text("")
    with pytest.raises(ConfigError, match=r"\.toml, \.yaml"):
        StudyConfig.from_file(tmp_path / "x.ini")
    with pytest.raises(ConfigError, match="not found"):
        StudyConfig.from_file(tmp_path / "missing.toml")


def test_budget_rule_gives_byte_runs_more_steps():
    # 3 bytes per token sees the same bytes in a third of the steps.
    byte = steps_for_budget(budget_bytes=3 * 4096, batch_size=4, seq_len=16, bytes_per_token=1.0)
    bpe = steps_for_budget(budget_bytes=3 * 4096, batch_size=4, seq_len=16, bytes_per_token=3.0)
    assert (byte, bpe) == (192, 64)
    for bpt in (1.0, 2.7, 3.3, 4.9):
        steps = steps_for_budget(budget_bytes=50_000, batch_size=8, seq_len=32, bytes_per_token=bpt)
        assert 50_000 <= steps * 8 * 32 * bpt < 50_000 + 8 * 32 * bpt


def test_every_design_maps_onto_model_config_fields():
    cfg = StudyConfig(rank=8, cutoffs=[0.25, 0.5])
    for d in DESIGNS:
        over = design_overrides(d, cfg, 1000)
        assert over["embedding"] in ("lookup", "factorized", "adaptive") and "head" in over
    assert design_overrides("adaptive", cfg, 1000)["cutoffs"] == [250, 500]
