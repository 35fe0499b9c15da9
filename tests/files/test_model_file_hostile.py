"""Hostile model and data files: each is loaded in a fresh process, and must load or be refused
within 100 MB of memory above a bare import and 2 seconds."""

import gzip
import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import chainrule as cr

MEMORY_MIB = 100
SECONDS = 2.0

MEASURE = """
import json, resource, sys, time
import numpy as np
import chainrule as cr
from chainrule.learn.datasets import read_idx
path, kind = sys.argv[1], sys.argv[2]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    (cr.load_model if kind == "model" else read_idx)(path)
    outcome = "loaded"
except ValueError as error:
    outcome = str(error)
seconds = time.perf_counter() - start
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"outcome": outcome, "seconds": seconds, "grown_mib": grown}))
"""


def measured(path, kind="model"):
    """Load `path` in a fresh process; the outcome, the seconds it took and the peak memory it added."""
    completed = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), kind], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(completed.stdout)


def npy_bytes(array):
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def architecture(**changes):
    record = {
        "format": "chainrule-model",
        "version": 1,
        "seed": 0,
        "dtype": None,
        "layers": [{"class": "Dense", "config": {"n_inputs": 2, "n_neurons": 3}}, {"class": "Softmax", "config": {}}],
        "loss": {"class": "CategoricalCrossentropy", "config": {}},
        "optimizer": {"class": "SGD", "config": {}},
        "metrics": ["accuracy"],
        "training_state": False,
    }
    return np.frombuffer(json.dumps(record | changes).encode(), dtype=np.uint8)


def write_zip(path, members):
    """members: name -> bytes, or a (chunk, count) pair streamed as `count` repeats of `chunk`."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, content in members.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                if isinstance(content, tuple):
                    chunk, count = content
                    for _ in range(count):
                        member.write(chunk)
                else:
                    member.write(content)


GOOD_WEIGHTS = {
    "layer0.weights": npy_bytes(np.zeros((2, 3), np.float32)),
    "layer0.biases": npy_bytes(np.zeros((1, 3), np.float32)),
}


def junk_member(path):
    junk = (b"\0" * (1 << 20), 400)
    write_zip(path, {"architecture": npy_bytes(architecture()), **GOOD_WEIGHTS, "optimizer.junk": junk})


def padded_architecture(path):
    record = np.frombuffer(architecture().tobytes() + b" " * (64 << 20), dtype=np.uint8)
    write_zip(path, {"architecture": npy_bytes(record), **GOOD_WEIGHTS})


def huge_dense(path):
    layers = [{"class": "Dense", "config": {"n_inputs": 16000, "n_neurons": 16000}}, {"class": "Softmax", "config": {}}]
    write_zip(path, {"architecture": npy_bytes(architecture(layers=layers))})


def relu_layers(count):
    def make(path):
        layers = [{"class": "Dense", "config": {"n_inputs": 2, "n_neurons": 3}}]
        layers += [{"class": "ReLU", "config": {}}] * count
        write_zip(path, {"architecture": npy_bytes(architecture(layers=layers)), **GOOD_WEIGHTS})

    return make


def seed_list(path):
    write_zip(path, {"architecture": npy_bytes(architecture(seed=list(range(100_000)))), **GOOD_WEIGHTS})


def long_class_name(path):
    layers = [{"class": "X" * 900_000, "config": {}}]
    write_zip(path, {"architecture": npy_bytes(architecture(layers=layers)), **GOOD_WEIGHTS})


def zero_dense(path):
    """A zero-filled Dense(3000, 3000), under max_parameters: 36 MB of weights in a few KB of deflate."""
    layers = [{"class": "Dense", "config": {"n_inputs": 3000, "n_neurons": 3000}}, {"class": "Softmax", "config": {}}]
    weights = npy_bytes(np.zeros((0,), np.float32)).replace(b"(0,)", b"(3000, 3000)")
    write_zip(
        path,
        {
            "architecture": npy_bytes(architecture(layers=layers)),
            "layer0.weights": weights + bytes(4 * 3000 * 3000),
            "layer0.biases": npy_bytes(np.zeros((1, 3000), np.float32)),
        },
    )


def duplicate_member(path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        write_zip_twice(path)


def write_zip_twice(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("architecture.npy", npy_bytes(architecture()))
        for name, content in [*GOOD_WEIGHTS.items(), ("layer0.weights", npy_bytes(np.ones((2, 3), np.float32)))]:
            archive.writestr(f"{name}.npy", content)


def long_header(path):
    dictionary = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".ljust(20_000) + "\n"
    header = b"\x93NUMPY\x02\x00" + len(dictionary).to_bytes(4, "little") + dictionary.encode()
    write_zip(path, {"architecture": npy_bytes(architecture()), **GOOD_WEIGHTS, "layer0.weights": header + bytes(24)})


HOSTILE_MODELS = {
    "a zero Dense(3000, 3000) deflated to a few KB": (zero_dense, "more than 32 times"),
    "a member stored twice": (duplicate_member, "it holds the member 'layer0.weights' more than once"),
    "an .npy header of 20,000 bytes": (long_header, "or one over 10000 bytes"),
    "an unused member inflating to 400 MB": (junk_member, "loaded"),
    "the architecture followed by 64 MB of spaces": (padded_architecture, "bytes; at most 1048576 are allowed"),
    "Dense(16000, 16000)": (huge_dense, "more than max_parameters=10000000"),
    "1,000,000 ReLU layers": (relu_layers(1_000_000), "holds 33000299 bytes; at most 1048576 are allowed"),
    "20,000 ReLU layers": (relu_layers(20_000), "it must list 1 to 10000 layers"),
    "a seed of 100,000 numbers": (seed_list, "is not a whole number >= 0"),
}


@pytest.mark.parametrize("name", HOSTILE_MODELS)
def test_hostile_model_files_are_bounded(tmp_path, name):
    make, expected = HOSTILE_MODELS[name]
    make(tmp_path / "hostile.npz")
    assert (tmp_path / "hostile.npz").stat().st_size < 2 * 2**20
    result = measured(tmp_path / "hostile.npz")
    assert expected in result["outcome"]
    assert result["grown_mib"] < MEMORY_MIB and result["seconds"] < SECONDS, result


def test_a_long_class_name_is_quoted_briefly(tmp_path):
    long_class_name(tmp_path / "hostile.npz")
    result = measured(tmp_path / "hostile.npz")
    assert "(900002 characters)" in result["outcome"] and len(result["outcome"]) < 1000


def test_a_gzip_bomb_of_idx_data_is_refused_by_its_header(tmp_path):
    path = tmp_path / "bomb-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as stream:
        stream.write(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big"))
        for _ in range(1200):
            stream.write(b"\0" * (1 << 20))
    assert path.stat().st_size < 2 * 2**20
    result = measured(path, kind="idx")
    assert "holds more than 10 values" in result["outcome"]
    assert result["grown_mib"] < MEMORY_MIB and result["seconds"] < SECONDS, result


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (np.full((2, 3), -1.0, np.float32), "negative values"),
        (np.full((2, 3), np.nan, np.float32), "NaN or inf"),
        (np.zeros((2, 3), np.complex64), "expected a plain numeric array"),
        (np.array(["1", "2"]), "expected a plain numeric array"),
        (np.zeros((3, 2), np.float32), r"has shape \(3, 2\); expected \(2, 3\)"),
    ],
)
def test_loaded_optimizer_state_is_checked(tmp_path, state, message):
    model = cr.Model(seed=0).add(cr.Dense(2, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop")
    model.fit(np.ones((4, 2)), [0, 1, 2, 0], epochs=1, verbose=0)
    model.save(tmp_path / "m.npz", include_optimizer=True)
    with np.load(tmp_path / "m.npz") as archive:
        members = {name: npy_bytes(archive[name]) for name in archive.files}
    members["optimizer.0.weights.cache"] = npy_bytes(state)
    write_zip(tmp_path / "bad.npz", members)
    with pytest.raises(ValueError, match=message):
        cr.load_model(tmp_path / "bad.npz")


def test_a_negative_iteration_count_is_refused(tmp_path):
    model = (
        cr.Model(seed=0)
        .add(cr.Dense(2, 3))
        .add(cr.Softmax())
        .compile(loss="categorical_crossentropy", optimizer="adam")
    )
    model.save(tmp_path / "m.npz", include_optimizer=True)
    with np.load(tmp_path / "m.npz") as archive:
        members = {name: npy_bytes(archive[name]) for name in archive.files}
    record = json.loads(np.load(io.BytesIO(members["architecture"])).tobytes()) | {"optimizer_iterations": -1}
    members["architecture"] = npy_bytes(np.frombuffer(json.dumps(record).encode(), dtype=np.uint8))
    write_zip(tmp_path / "bad.npz", members)
    with pytest.raises(ValueError, match="iteration count -1 is not >= 0"):
        cr.load_model(tmp_path / "bad.npz")


def test_partial_optimizer_state_is_refused_not_resumed_in_part(tmp_path):
    model = cr.Model(seed=0).add(cr.Dense(2, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.fit(np.ones((4, 2)), [0, 1, 2, 0], epochs=1, verbose=0)
    model.save(tmp_path / "m.npz", include_optimizer=True)
    assert cr.load_model(tmp_path / "m.npz").optimizer.iterations == 1  # whole: it resumes
    with np.load(tmp_path / "m.npz") as archive:
        members = {name: npy_bytes(archive[name]) for name in archive.files if name != "optimizer.0.biases.momentum"}
    write_zip(tmp_path / "bad.npz", members)
    with pytest.raises(
        ValueError, match=r"the optimizer state \['optimizer.0.biases.momentum'\] is missing; it is partial"
    ):
        cr.load_model(tmp_path / "bad.npz")


def test_a_file_of_5000_dense_layers_loads_in_linear_time(tmp_path):
    model = cr.Model(seed=0)  # each added layer's dtype was compared with every earlier one's
    for _ in range(5000):
        model.add(cr.Dense(2, 2))
    model.add(cr.Dense(2, 3)).add(cr.Softmax()).compile(loss="categorical_crossentropy", optimizer="adam")
    model.save(tmp_path / "deep.npz")
    assert (tmp_path / "deep.npz").stat().st_size < 4 * 2**20
    result = measured(tmp_path / "deep.npz")
    assert result["outcome"] == "loaded"
    assert result["grown_mib"] < MEMORY_MIB and result["seconds"] < SECONDS, result
