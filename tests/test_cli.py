"""The chainrule command, run as a user runs it: in a subprocess."""

import csv
import shutil
import subprocess
import sys

import pytest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chainrule(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "chainrule", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_train_prints_a_summary_and_writes_the_run_folder(tmp_path):
    result = chainrule("train", "--epochs", "30", "--out", str(tmp_path / "run"), "--verbose", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("the final model's scores (the progress bar showed running means")
    assert lines[1].startswith("training    loss ") and "accuracy" in lines[1]
    assert lines[2].startswith("validation  loss ") and "accuracy" in lines[2]
    run = tmp_path / "run"
    for picture in ("curves.png", "decision_boundary.png"):
        assert (run / picture).read_bytes().startswith(PNG_SIGNATURE)
    with open(run / "history.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 30
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    evaluated = chainrule("evaluate", str(run / "model.npz"))
    assert evaluated.returncode == 0 and evaluated.stdout.startswith("loss ")


def test_train_conv_trains_a_small_cnn_on_the_digits_and_evaluate_reads_it(tmp_path):
    pytest.importorskip("sklearn")
    run = tmp_path / "run"
    result = chainrule("train", "--dataset", "digits", "--conv", "--epochs", "3", "--out", str(run), "--verbose", "0")
    assert result.returncode == 0, result.stderr
    validation = float(result.stdout.splitlines()[2].split("accuracy ")[1])
    assert validation > 0.9  # three epochs of the small CNN already reach about 0.96
    evaluated = chainrule("evaluate", str(run / "model.npz"), "--dataset", "digits")
    assert evaluated.returncode == 0 and f"accuracy {validation:.4f}" in evaluated.stdout
    refused = chainrule("train", "--conv", "--dataset", "spiral")
    assert refused.returncode == 2 and "--conv trains on images: use --dataset digits or mnist" in refused.stderr


def test_train_regression_with_options(tmp_path):
    result = chainrule(
        "train",
        "--dataset",
        "sine",
        "--hidden",
        "16",
        "16",
        "--activation",
        "tanh",
        "--optimizer",
        "sgd",
        "--learning-rate",
        "0.1",
        "--momentum",
        "0.9",
        "--epochs",
        "5",
        "--batch-size",
        "100",
        "--l2",
        "1e-4",
        "--dropout",
        "0.1",
        "--out",
        str(tmp_path),
        "--verbose",
        "2",
    )
    assert result.returncode == 0, result.stderr
    assert "mae" in result.stdout and "epoch 5/5" in result.stdout
    assert not (tmp_path / "decision_boundary.png").exists()


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"]])
def test_help_explains_each_command(command):
    result = chainrule(*command, "--help")
    assert result.returncode == 0 and "usage: chainrule" in result.stdout


def test_user_errors_are_one_line(tmp_path):
    result = chainrule("train", "--dataset", "mnist", "--data", str(tmp_path), "--epochs", "1")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "train-images-idx3-ubyte" in result.stderr
    result = chainrule("evaluate", str(tmp_path / "nothing.npz"))
    assert result.returncode == 2 and "no such file" in result.stderr


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_gradcheck_raises_no_false_alarm_on_correct_code(activation):
    """The defaults pass a correct float64 network for every hidden activation, sizes up to 2,64,64,3, seeds 0-9."""
    from chainrule.cli import main

    for sizes in ("2,8,3", "2,64,64,3"):
        for seed in range(10):
            assert main(["gradcheck", "--sizes", sizes, "--activation", activation, "--seed", str(seed)]) == 0, (
                sizes,
                seed,
            )


def test_gradcheck_takes_epsilon_and_tolerance():
    result = chainrule("gradcheck", "--epsilon", "1e-4", "--tolerance", "1e-3")
    assert result.returncode == 0 and "passed (tolerance 0.001)" in result.stdout
    for option, value in (("--tolerance", "nan"), ("--tolerance", "-1"), ("--epsilon", "0")):
        refused = chainrule("gradcheck", option, value)
        assert refused.returncode == 2 and f"argument {option}: must be a finite number above 0" in refused.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gradcheck", "--sizes", "2.7,3"], "argument --sizes: expected whole numbers, got '2.7,3'"),
        (["explain", "softmax", "--labels", "1.9"], "argument --labels: expected whole numbers, got '1.9'"),
    ],
)
def test_fractional_sizes_and_labels_are_refused_not_truncated(args, message):
    result = chainrule(*args)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


def failing_commands(tmp_path):
    """(arguments, exit code, words the one line must contain) for each way a command can fail."""
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "somedir").mkdir()
    (tmp_path / "damaged.npz").write_bytes(b"PK\x03\x04 not really")
    model = tmp_path / "m.npz"
    import chainrule as cr

    cr.Model().add(cr.Dense(2, 3)).add(cr.Softmax()).compile(loss="categorical_crossentropy", optimizer="sgd").save(
        model
    )
    return [
        (
            ["train", "--dataset", "sine", "--optimizer", "sgd", "--learning-rate", "3", "--epochs", "300"],
            1,
            "Try a lower learning rate",
        ),
        (["gradcheck", "--sizes", "inf,3"], 2, "argument --sizes: expected whole numbers"),
        (["gradcheck", "--sizes", "1e12,3"], 2, "argument --sizes: numbers of at most"),
        (["gradcheck", "--sizes", "1,2;3,4"], 2, "argument --sizes: expected one row of whole numbers"),
        (["gradcheck", "--sizes", "90000,90000,3"], 2, "GiB of memory"),
        (["gradcheck", "--tolerance", "nan"], 2, "argument --tolerance: must be a finite number above 0"),
        (["gradcheck", "--tolerance", "-1"], 2, "argument --tolerance: must be a finite number above 0"),
        (["train", "--hidden", "1000000000000"], 2, "argument --hidden: must be from 1 to 100000"),
        (["train", "--seed", "-1"], 2, "argument --seed: must be from 0"),
        (["train", "--out", str(tmp_path / "a_file")], 2, "is a file; give a folder"),
        (["explain", "softmax", "--labels", "1e30"], 2, "argument --labels"),
        (["explain", "neuron", "--png", str(tmp_path / "a_file" / "x.png")], 2, "does not exist"),
        (["export", str(model), "--onnx", str(tmp_path / "somedir")], 2, "is not a regular file"),
        (["evaluate", str(tmp_path / "nothing.npz")], 2, "no such file"),
        (["evaluate", str(tmp_path / "damaged.npz")], 2, "cannot load"),
        (["train", "--dataset", "mnist", "--data", str(tmp_path / "somedir")], 2, "train-images-idx3-ubyte"),
        (["fly"], 2, "invalid choice"),
        (["explain", "neuron", "--dvalue", "-inf"], 2, "dvalue contains NaN or inf"),
        (["explain", "neuron", "--x", "1e308,1,1"], 2, "inputs contains NaN or inf"),  # no overflow warnings first
        (["gradcheck", "--sizes", "2,1000,1000,3"], 2, "minutes here; pass --max-minutes"),
    ]


def test_every_failure_is_one_line_with_its_exit_code_and_no_traceback(tmp_path):
    for arguments, code, words in failing_commands(tmp_path):
        result = chainrule(*arguments)
        assert result.returncode == code, (arguments, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, (arguments, result.stderr)
        assert words in result.stderr, (arguments, result.stderr)


def test_a_run_folder_on_a_full_disk_is_refused_before_anything_is_created(tmp_path, monkeypatch):
    from chainrule import cli

    usage = shutil.disk_usage
    monkeypatch.setattr(cli.shutil, "disk_usage", lambda path: usage(path)._replace(free=1 << 20))
    with pytest.raises(cli.UsageError, match=f"the disk holding {tmp_path} has less than 16 MiB free"):
        cli.output_folder(tmp_path / "runs" / "spiral")
    assert list(tmp_path.iterdir()) == []


def test_a_run_folder_that_cannot_be_written_is_removed_again(tmp_path, monkeypatch):
    from chainrule import cli

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli.tempfile, "TemporaryFile", refuse)
    with pytest.raises(cli.UsageError, match="cannot write to the run folder .*: Permission denied"):
        cli.output_folder(tmp_path / "runs" / "spiral")
    assert list(tmp_path.iterdir()) == []


def test_png_into_a_folder_reports_the_file_written(tmp_path):
    result = chainrule("explain", "neuron", "--png", str(tmp_path))
    assert result.returncode == 0 and f"wrote {tmp_path / 'neuron.png'}" in result.stdout
    assert (tmp_path / "neuron.png").read_bytes().startswith(PNG_SIGNATURE)


def test_png_without_a_suffix_reports_the_file_it_wrote_and_another_suffix_is_refused(tmp_path):
    result = chainrule("explain", "neuron", "--png", str(tmp_path / "noext"))
    assert result.returncode == 0 and f"wrote {tmp_path / 'noext.png'}" in result.stdout
    assert (tmp_path / "noext.png").read_bytes().startswith(PNG_SIGNATURE)
    refused = chainrule("explain", "neuron", "--png", str(tmp_path / "picture.jpg"))
    assert refused.returncode == 2 and "the picture is a PNG; name a .png file" in refused.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["noext.png"]


def test_momentum_with_another_optimizer_than_sgd_is_refused_before_anything_is_written(tmp_path):
    result = chainrule("train", "--momentum", "0.9", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "--momentum applies to --optimizer sgd, not adam" in result.stderr
    assert not (tmp_path / "run").exists()


def test_export_refuses_to_write_over_its_own_model(tmp_path):
    pytest.importorskip("onnx")
    run = tmp_path / "run"
    assert chainrule("train", "--epochs", "5", "--out", str(run), "--verbose", "0").returncode == 0
    before = (run / "model.npz").read_bytes()
    for target in (run / "model.npz", run / ".." / "run" / "model.npz"):
        result = chainrule("export", str(run / "model.npz"), "--onnx", str(target))
        assert result.returncode == 2 and "is the model file itself" in result.stderr
    assert (run / "model.npz").read_bytes() == before


def test_names_from_a_hostile_file_reach_the_terminal_escaped(tmp_path):
    import json

    import numpy as np

    run = tmp_path / "run"
    assert chainrule("train", "--epochs", "5", "--out", str(run), "--verbose", "0").returncode == 0
    with np.load(run / "model.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    record = json.loads(arrays["architecture"].tobytes())
    record["layers"][0]["class"] = "X\nchainrule evaluate: OK\x1b[2J"
    arrays["architecture"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    np.savez(tmp_path / "forged.npz", **arrays)
    result = chainrule("evaluate", str(tmp_path / "forged.npz"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "\x1b" not in result.stderr and "\\x1b[2J" in result.stderr and "\\n" in result.stderr


def test_an_interrupted_run_writes_its_files_and_exits_130(tmp_path):
    import signal
    import time

    with subprocess.Popen(
        [sys.executable, "-m", "chainrule", "train", "--epochs", "100000000", "--out", str(tmp_path), "--verbose", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as run:
        assert run.stdout.readline().startswith("epoch 1/")  # training has started
        time.sleep(0.2)
        run.send_signal(signal.SIGINT)
        output, errors = run.communicate(timeout=120)
    assert run.returncode == 130, errors
    assert "interrupted after epoch" in output and (tmp_path / "model.npz").is_file()


def test_help_shows_every_default():
    result = chainrule("train", "--help")
    for option in (
        "(default: 0.05, or 0.003 with --conv)",
        "(default: adam)",
        "(default: relu)",
        "(default: 10000, or 20 with --conv)",
        "(default: 5e-07, or 0.001 with --conv)",
        "(default: all, or 64 with --conv)",
    ):
        assert option in " ".join(result.stdout.split()), option


def test_the_overfitting_note_names_the_best_epoch_and_stays_silent_otherwise():
    from chainrule.cli import overfitting_note
    from chainrule.training.history import History

    history = History()
    for epoch, value in enumerate([1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]):
        history.on_epoch_end(epoch, {"loss": 0.1, "val_loss": value})
    assert overfitting_note(history).startswith("the validation loss was lowest at epoch 4 (0.5000) and rose to 0.9000")
    steady = History()
    for epoch in range(12):
        steady.on_epoch_end(epoch, {"loss": 0.1, "val_loss": 1.0 / (epoch + 1)})
    assert overfitting_note(steady) == ""
