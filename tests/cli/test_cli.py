import json
import subprocess
import sys

from tokembed.cli import main


def test_user_error_is_one_line_exit_2(capsys, tmp_path):
    rc = main(["tokenizer", "info", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err and "error:" in err


def test_byte_tokenizer_via_cli(tmp_path, capsys):
    assert main(["tokenizer", "train", "--kind", "byte", "-o", str(tmp_path / "tok")]) == 0
    capsys.readouterr()
    assert main(["tokenizer", "encode", str(tmp_path / "tok"), "hé", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ids": [104, 195, 169], "tokens": ["<0x68>", "<0xC3>", "<0xA9>"]}


def test_python_dash_m_and_base_import_is_light():
    code = "import sys, tokembed; print(any(m in sys.modules for m in ('torch', 'transformers', 'faiss', 'sklearn', 'matplotlib')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    r = subprocess.run([sys.executable, "-m", "tokembed", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "tokembed" in r.stdout
