import argparse
import json
import re

import pytest

from bnncore.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--topology", "784-64-10", "--epochs", "1", "--limit", "5000",
                 "--data-dir", str(mnist_dir.parent), "-o", str(out), "--no-progress"]) == 0
    return out


def test_train_eval_fold_summary(run_dir, mnist_dir, capsys, tmp_path):
    data = ["--data-dir", mnist_dir.parent]
    code, out, _ = run(capsys, "eval", run_dir / "best.pt", *data, "--json")
    torch_acc, torch_confusion = json.loads(out)["accuracy"], json.loads(out)["confusion"]
    assert code == 0 and json.loads(out)["model"] == "torch" and torch_acc > 0.8
    per_class = json.loads(out)["per_class"]
    assert [r["name"] for r in per_class] == list("0123456789") and sum(r["images"] for r in per_class) == 10000
    assert sum(torch_confusion[c][c] for c in range(10)) == round(torch_acc * 10000)

    code, out, _ = run(capsys, "fold", run_dir / "best.pt", "-o", tmp_path / "net", *data)
    assert code == 0 and "0 class mismatches, 0 of 640,000 hidden bits differ" in out

    code, out, _ = run(capsys, "eval", tmp_path / "net", *data, "--json")
    assert code == 0 and json.loads(out)["model"] == "golden" and json.loads(out)["accuracy"] == torch_acc
    assert json.loads(out)["confusion"] == torch_confusion          # the fold is exact, class by class
    code, out, _ = run(capsys, "eval", tmp_path / "net", *data)      # people get a table
    row = out.splitlines()[2].split(" | ")
    assert code == 0 and row[0] == "| golden" and row[4:6] == ["10,000", f"{round(torch_acc * 10000):,}"]
    assert row[6] == f"{100 * torch_acc:.2f}% |"
    assert "| class | images | correct | accuracy | most often taken for |" in out
    assert "| true \\ predicted | 0 | 1 | 2 |" in out

    code, out, _ = run(capsys, "summary", tmp_path / "net", "--json")
    assert code == 0 and json.loads(out)["total"]["weight_bits"] == 784 * 64 + 64 * 10

    code, out, _ = run(capsys, "export", run_dir / "best.pt", "-o", tmp_path / "net2")
    assert code == 0 and (tmp_path / "net2" / "weights.txt").read_text() == (tmp_path / "net" / "weights.txt").read_text()

    code, out, _ = run(capsys, "import", tmp_path / "net")
    assert code == 0 and "valid, FoldedNetwork(784-64-10" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--topology", "784-x-10"], r"bnn train: error: topology '784-x-10', layer 1 \('x'\) does not parse"),
    (["train", "--topology", "100-10", "--epochs", "1"], r"bnn train: error: topology 100-10 expects 100 inputs, but mnist images have 784 pixels"),
    (["eval", "nonexistent.pt"], r"bnn eval: error: nonexistent.pt: no such checkpoint file"),
    (["data", "where", "mnist", "--data-dir", "/nonexistent"], r"bnn data: error: dataset 'mnist' not found"),
])
def test_errors_are_one_line_messages(capsys, argv, message, mnist_dir):
    if argv[0] == "train":
        argv = argv + ["--data-dir", str(mnist_dir.parent), "-o", "/tmp/bnn-cli-should-not-train"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and re.match(message, err) and "Traceback" not in err


def test_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"junk")
    code, _, err = run(capsys, "fold", tmp_path / "x.pt", "-o", tmp_path / "out")
    assert code == 2 and "not a bnncore checkpoint" in err and not (tmp_path / "out").exists()


def test_data_where(capsys, mnist_dir):
    code, out, _ = run(capsys, "data", "where", "mnist", "--data-dir", mnist_dir.parent)
    assert code == 0 and out.strip() == str(mnist_dir)


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`bnn summary DIR | head`: a reader that stops early gets no traceback and no error."""
    import os
    import subprocess
    import sys

    import numpy as np

    from bnncore.exports import export
    from bnncore.network import DenseLayer, FoldedNetwork, OutputHead
    rng = np.random.default_rng(0)
    net = FoldedNetwork((DenseLayer(rng.integers(0, 2, (8, 16)), rng.integers(0, 17, 8)),),
                        OutputHead(rng.integers(0, 2, (3, 8)), np.zeros(3, np.int64)))
    export(net, tmp_path / "net")
    read, write = os.pipe()
    os.close(read)                                   # the reader has gone before the first line
    p = subprocess.run([sys.executable, "-m", "bnncore.cli", "summary", str(tmp_path / "net")],
                       stdout=write, stderr=subprocess.PIPE, text=True)
    os.close(write)
    assert p.returncode == 141 and p.stderr == ""


def _verbs():
    from bnncore.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.choices and a.dest == "command")
    return sub.choices


def test_help_needs_no_torch():
    """`bnn --help` and every `bnn VERB --help` answer without importing torch (seconds)."""
    import subprocess
    import sys
    from bnncore.cli import EXAMPLES
    probe = ("import sys, contextlib, io\nfrom bnncore.cli import main\n"
             "for argv in [['--help']] + [[v, '--help'] for v in sys.argv[1:]]:\n"
             "    with contextlib.redirect_stdout(io.StringIO()):\n"
             "        try: main(argv)\n"
             "        except SystemExit: pass\n"
             "print(sorted(m for m in ('torch', 'numpy', 'numba', 'amaranth') if m in sys.modules))\n")
    p = subprocess.run([sys.executable, "-c", probe, *EXAMPLES], capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "[]", p.stdout + p.stderr


def test_verbs_in_flow_order_each_with_an_example_that_parses():
    import shlex
    from bnncore.cli import EXAMPLES, build_parser
    assert list(_verbs()) == list(EXAMPLES)
    for verb, example in EXAMPLES.items():
        argv = shlex.split(example)
        assert argv[:2] == ["bnn", verb]
        assert build_parser().parse_args(argv[1:]).command == verb
        assert example in _verbs()[verb].format_help()


def test_each_default_is_stated_once():
    for verb, p in _verbs().items():
        for action in p._actions:
            text = p._get_formatter()._expand_help(action) if action.help else ""
            assert text.count("default") <= 1, (verb, action.dest, text)
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert "default" in text, (verb, action.dest, text)
