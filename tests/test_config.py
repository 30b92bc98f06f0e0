"""Run configs: every bad input is a clear ConfigError naming file, line, key, value and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab.errors import ConfigError, IncompatibleError
from rnnlab.run import load_run_config
from tests.conftest import CELL_LIST, TINY


def test_a_valid_config_resolves_with_defaults_filled(write_config, registry) -> None:
    run = load_run_config(write_config(TINY), registry)
    assert run.name == "tiny" and run.cell.name == "lstm"
    assert run.remedies[0].params.model_dump() == {"mode": "norm", "threshold": 1.0}
    full = run.as_dict()
    assert full["dataset"]["seq_len"] == 12 and full["cell"]["hidden_size"] == 8
    assert full["train"]["optimizer"] == "adam" and full["model"] == {"layers": 1}
    flat = run.flat_params()
    assert flat["remedies"] == "clip" and flat["remedy.clip.threshold"] == "1.0"
    assert flat["train.steps"] == "6" and flat["cell.name"] == "lstm"


def test_name_defaults_to_the_file_stem(write_config, registry) -> None:
    path = write_config(TINY.replace("name: tiny\n", ""), name="my-exp.yaml")
    assert load_run_config(path, registry).name == "my-exp"


def test_overrides_set_any_key_with_yaml_values(write_config, registry) -> None:
    run = load_run_config(
        write_config(TINY),
        registry,
        [
            "cell.name=rnn",
            "dataset.seq_len=30",
            "train.lr=1e-1",
            "remedies.0.threshold=0.5",
            "cell.nonlinearity=relu",
            "model.layers=2",
        ],
    )
    assert run.cell.name == "rnn" and run.cell.params.nonlinearity == "relu"  # type: ignore[attr-defined]
    assert run.dataset.params.seq_len == 30  # type: ignore[attr-defined]
    assert run.config.train.lr == 0.1 and run.config.model.layers == 2
    assert run.remedies[0].params.threshold == 0.5  # type: ignore[attr-defined]


def _error(write_config, registry, text: str, overrides=()) -> str:
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        load_run_config(path, registry, list(overrides))
    message = str(info.value)
    assert str(path) in message or "--set" in message
    return message


def test_unknown_top_level_key(write_config, registry) -> None:
    msg = _error(write_config, registry, TINY + "trian: {steps: 3}\n")
    assert "line 7, key trian: unknown key 'trian'" in msg and "Did you mean 'train'?" in msg


def test_unknown_train_key_names_the_line_and_allowed_keys(write_config, registry) -> None:
    msg = _error(write_config, registry, TINY.replace("lr: 0.01", "lrate: 0.01"))
    assert "line 6, key train.lrate: unknown key 'lrate'" in msg
    assert "allowed keys here:" in msg and "Did you mean 'lr'?" in msg


def test_unknown_plugin_option_lists_the_plugins_options(write_config, registry) -> None:
    msg = _error(
        write_config, registry, TINY.replace("hidden_size: 8", "hidden_size: 8, forget: 1")
    )
    assert "line 4, key cell.forget: unknown key 'forget'" in msg
    assert "forget_bias" in msg and "hidden_size" in msg


def test_unknown_cell_suggests_the_closest(write_config, registry) -> None:
    msg = _error(write_config, registry, TINY.replace("name: lstm", "name: lstmm"))
    assert "line 4, key cell.name: unknown cell 'lstmm'" in msg
    assert f"installed cells: {CELL_LIST}" in msg and "Did you mean 'lstm'?" in msg


def test_unknown_remedy_in_the_short_form(write_config, registry) -> None:
    msg = _error(write_config, registry, TINY.replace("[clip]", "[clpi]"))
    assert "line 5, key remedies.0.name: unknown remedy 'clpi'" in msg and "'clip'" in msg


def test_wrong_type_names_value_and_expectation(write_config, registry) -> None:
    msg = _error(write_config, registry, TINY.replace("steps: 6", "steps: many"))
    assert "line 6, key train.steps:" in msg and "valid integer" in msg and "'many'" in msg
    msg = _error(
        write_config, registry, TINY.replace("optimizer", "x").replace("lr: 0.01", "lr: -1")
    )
    assert "key train.lr: Input should be greater than 0 (got -1)" in msg


def test_bad_choice_lists_the_allowed_values(write_config, registry) -> None:
    msg = _error(write_config, registry, TINY, ["train.optimizer=adamw"])
    assert "--set train.optimizer=adamw, key train.optimizer" in msg
    assert "'adam', 'sgd' or 'rmsprop'" in msg and "'adamw'" in msg


def test_missing_required_section(write_config, registry) -> None:
    msg = _error(write_config, registry, "dataset: {name: adding}\n")
    assert "required key 'cell' is missing" in msg


def test_missing_file(registry, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_run_config(tmp_path / "nope.yaml", registry)


def test_malformed_yaml_gives_line_and_column(write_config, registry) -> None:
    msg = _error(write_config, registry, "dataset: {name: adding\ncell: [\n")
    assert "malformed YAML" in msg and "line" in msg


def test_not_a_mapping(write_config, registry) -> None:
    assert "expected a mapping" in _error(write_config, registry, "- a\n- b\n")


def test_bad_override_syntax(write_config, registry) -> None:
    assert "expected KEY=VALUE" in _error(write_config, registry, TINY, ["train.lr"])


def test_remedy_listed_twice(write_config, registry) -> None:
    msg = _error(write_config, registry, TINY.replace("[clip]", "[clip, clip]"))
    assert "remedy 'clip' is listed twice" in msg


def test_incompatible_remedy_is_refused_with_the_fix(write_config, registry) -> None:
    path = write_config(TINY.replace("[clip]", "[relu]"))
    with pytest.raises(IncompatibleError) as info:
        load_run_config(path, registry)
    msg = str(info.value)
    assert "remedy 'relu' is incompatible with cell 'lstm'" in msg
    assert "identity_init" in msg and "cells that support it: rnn, simple" in msg


def test_conflicting_remedies_blame_the_remedies_not_the_cell(write_config, registry) -> None:
    msg = _error(write_config, registry, TINY.replace("[clip]", "[batchnorm, layernorm]"))
    assert "cannot be combined with 'layernorm'" in msg
    assert "remove one of them from remedies" in msg and "change the cell" not in msg


def test_an_error_inside_a_replaced_list_cites_the_flag(write_config, registry) -> None:
    msg = _error(write_config, registry, TINY, ["remedies=[{name: clip, treshold: 2}]"])
    assert msg.startswith("--set remedies=[{name: clip, treshold: 2}], key remedies.0.treshold")
    assert "Did you mean 'threshold'?" in msg


def test_a_single_remedy_may_be_written_without_a_list(write_config, registry) -> None:
    run = load_run_config(write_config(TINY.replace("[clip]", "clip")), registry)
    assert [r.name for r in run.remedies] == ["clip"]


def test_a_device_the_machine_lacks_is_a_config_error(write_config, registry) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    msg = _error(write_config, registry, TINY, ["train.device=cuda:0"])
    assert "--set train.device=cuda:0, key train.device: 'cuda:0' is not available" in msg
    assert "use device: auto or cpu" in msg


def test_a_duplicated_key_names_the_key_and_both_lines(write_config, registry) -> None:
    """YAML keeps the later value silently; rnnlab refuses the file (issue 14, item 8)."""
    text = TINY + "train: {steps: 3}\n"  # a second train: section, line 7
    msg = _error(write_config, registry, text)
    assert "line 7, key train: duplicated key 'train', already given on line 6" in msg
    assert "keep one of the two" in msg
    nested = TINY.replace("hidden_size: 8}", "hidden_size: 8, hidden_size: 16}")
    msg = _error(write_config, registry, nested)
    assert (
        "line 4, key cell.hidden_size: duplicated key 'hidden_size', already given on line 4" in msg
    )
    block = "dataset: {name: adding}\ncell: {name: rnn}\ntrain:\n  lr: 0.1\n  steps: 2\n  lr: 0.2\n"
    msg = _error(write_config, registry, block)
    assert "line 6, key train.lr: duplicated key 'lr', already given on line 4" in msg


def test_a_duplicated_key_in_a_set_value(write_config, registry) -> None:
    msg = _error(write_config, registry, TINY, ["cell={name: rnn, name: gru}"])
    assert msg.startswith("--set cell={name: rnn, name: gru}: duplicated key 'name'")


def test_yaml_merge_keys_are_not_duplicates(write_config, registry) -> None:
    text = "base: &b {steps: 2}\n" + TINY
    text = text.replace("train: {steps: 6,", "train: {<<: *b, <<: *b, steps: 6,")
    msg = _error(write_config, registry, text)  # only the unknown key 'base' is wrong here
    assert "unknown key 'base'" in msg and "duplicated" not in msg


def test_train_select_and_rmsprop_alpha_are_checked(write_config, registry) -> None:
    msg = _error(write_config, registry, TINY, ["train.select=best"])
    assert "key train.select: Input should be 'final' or 'best_val' (got 'best')" in msg
    msg = _error(write_config, registry, TINY, ["train.rmsprop_alpha=1.0"])
    assert "key train.rmsprop_alpha: Input should be less than 1 (got 1.0)" in msg
    run = load_run_config(write_config(TINY), registry)
    assert run.config.train.select == "final" and run.config.train.rmsprop_alpha == 0.99
