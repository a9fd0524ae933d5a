"""Model-folder JSON files that parse but hold the wrong type, or nest without end.

Before the fix ``config.json`` of ``[1,2,3]`` gave a ``TypeError`` traceback, ``null`` an
``AttributeError``-free but wrong load path, and 100k nested ``[`` a ``RecursionError``.
"""

import pytest
from _hostile import assert_one_line_error


@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [("config.json", "[1, 2, 3]", "(an array); expected an object"),
     ("config.json", "null", "holds JSON null (null)"),
     ("config.json", '"bert"', "(a string)"),
     ("config.json", "[" * 100_000, "config.json"),
     ("tokenizer_config.json", "[]", "(an array); expected an object"),
     ("model.safetensors.index.json", "[" * 100_000, "nested too deeply")],
)  # fmt: skip
def test_wrong_json_type_in_a_model_folder_is_one_line(hf_folder, cli, name, content, expect):
    (hf_folder / name).write_text(content)
    rc, out, err = cli("neighbors", hf_folder, "king")
    assert_one_line_error(rc, err, name, expect)
    assert out == ""
