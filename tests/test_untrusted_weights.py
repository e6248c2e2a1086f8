"""Weights and checkpoint files are untrusted input (issue 23, items 1-2): forged configs are refused before any
model is built, the checksum covers the header, every tensor is float32. Each file is forged here, byte by byte
where the forgery is in the header."""
import hashlib
import json
import struct
import warnings
from importlib.resources import files

import numpy as np
import pytest

from ssdops.diffnet import format as F

TINY = {"model": "diffnet", "n_layers": 1, "depth": 2, "width": 2, "final_relu": True, "ndim": 2}


def tensors_of(config, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.random(s, dtype=np.float32) for k, s in F.expected_shapes(config).items()}


def split(data):
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join(header, payload):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + payload


def rehash(header, payload):
    """The forger's last step: the header's checksum recomputed (as an attacker who read the format would)."""
    meta = {k: v for k, v in header["__metadata__"].items() if k != F.CHECKSUM_KEY}
    canonical = json.dumps({**header, "__metadata__": meta}, sort_keys=True, separators=(",", ":")).encode()
    header["__metadata__"] = {**meta, F.CHECKSUM_KEY: hashlib.sha256(canonical + b"\0" + payload).hexdigest()}
    return join(header, payload)


def loaders():
    import diffnet_torch

    found = [("torch", diffnet_torch.load_weights, diffnet_torch.models)]
    try:
        import diffnet_jax
    except ImportError:
        return found
    return found + [("jax", diffnet_jax.load_weights, diffnet_jax.models)]


@pytest.fixture(params=[name for name, *_ in loaders()])
def loader(request, monkeypatch):
    """``load_weights`` of one framework, whose ``build_model`` fails the test if it is ever called."""
    name, load, models = next(entry for entry in loaders() if entry[0] == request.param)

    def never(config):
        raise AssertionError(f"a model was built from a forged config {config}")

    monkeypatch.setattr(models, "build_model", never)
    return load


@pytest.mark.parametrize("forged", [
    {"model": "linear", "grid_shape": [8192, 8192], "n_layers": 1, "final_relu": False},   # 3.9 GB in PyTorch
    {**TINY, "n_layers": 3_000_000},
    {**TINY, "width": 100_000},
    {**TINY, "depth": 10**9},
    {"model": "unet", "channels": [8192] * 5, "in_channels": 1, "residual": True},
    {**TINY, "ndim": 7},
    {**TINY, "n_layers": "1"},
    {**TINY, "final_relu": 1},
    {**TINY, "unknown": 1},
    {"model": "resnet"},
    [1, 2],
])
def test_a_forged_config_is_refused_before_anything_is_built(tmp_path, loader, forged):
    """The file is small and correctly hashed; its config asks for another (often huge) model."""
    path = tmp_path / "forged.safetensors"
    F.write(path, tensors_of(TINY), {"format": F.WEIGHTS_FORMAT, "config": json.dumps(forged)})
    assert path.stat().st_size < 2000
    with pytest.raises(F.CorruptFileError, match="forged.safetensors"):
        loader(path)


def test_every_model_s_expected_shapes_are_its_state_dict():
    """:func:`expected_shapes` (no model built) against the models PyTorch builds."""
    import diffnet_torch

    for config in [TINY, {**TINY, "ndim": 3, "depth": 4, "width": 3, "n_layers": 2}, {**TINY, "ndim": 1},
                   {"model": "linear", "grid_shape": [4, 5], "n_layers": 2, "final_relu": False},
                   {"model": "unet", "channels": [2, 4, 8], "in_channels": 1, "residual": True}]:
        model = diffnet_torch.build_model(config)
        assert F.expected_shapes(model.config) == {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("dtype", ["I32", "BF16", "F64", "U8"])
def test_a_tensor_dtype_changed_in_the_header_is_refused(tmp_path, loader, dtype):
    """F32 -> I32 keeps the sizes (the issue's file loaded dt = 1.04e9); BF16 was a bare KeyError. Refused by
    the dtype check whether or not the checksum was recomputed."""
    path = tmp_path / "w.safetensors"
    F.write(path, tensors_of(TINY), {"format": F.WEIGHTS_FORMAT, "config": json.dumps(TINY)})
    header, payload = split(path.read_bytes())
    header["layers.0.dt"]["dtype"] = dtype
    for name, data in [("edited", join(header, payload)), ("rehashed", rehash(header, payload))]:
        forged = tmp_path / f"{name}.safetensors"
        forged.write_bytes(data)
        with pytest.raises(F.CorruptFileError, match=f"{name}.safetensors: tensor 'layers.0.dt' has dtype"):
            loader(forged)


@pytest.mark.parametrize("edit", ["metadata", "shape", "name"])
def test_the_checksum_covers_the_header(tmp_path, loader, edit):
    path = tmp_path / "w.safetensors"
    F.write(path, tensors_of(TINY), {"format": F.WEIGHTS_FORMAT, "config": json.dumps(TINY), "epoch": "3"})
    header, payload = split(path.read_bytes())
    if edit == "metadata":
        header["__metadata__"]["epoch"] = "4"
    elif edit == "shape":
        header["layers.0.estimator.convs.1.bias"]["shape"] = [1, 5]   # the same 5 floats
    else:
        a, b = "layers.0.estimator.convs.0.bias", "layers.0.estimator.convs.1.bias"
        header[a], header[b] = header[b], header[a]
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(join(header, payload))
    with pytest.raises(F.CorruptFileError, match="forged.safetensors: the file does not match its SHA-256"):
        loader(forged)


@pytest.mark.filterwarnings("ignore::ssdops.diffnet.format.UnverifiedHeaderWarning")   # no checksum left
@pytest.mark.parametrize("metadata", [{"config": 5}, {"config": None}, [], "x", {"format": ["a"]},
                                      {"format": F.WEIGHTS_FORMAT}, {"format": F.WEIGHTS_FORMAT, "config": "{"}])
def test_metadata_of_wrong_types_is_a_corrupt_file(tmp_path, loader, metadata):
    path = tmp_path / "w.safetensors"
    F.write(path, tensors_of(TINY), {"format": F.WEIGHTS_FORMAT, "config": json.dumps(TINY)})
    header, payload = split(path.read_bytes())
    header["__metadata__"] = metadata
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(join(header, payload))
    with pytest.raises(F.CorruptFileError, match="forged.safetensors"):
        loader(forged)


@pytest.mark.parametrize("entry", [{"dtype": "F32", "shape": [2], "data_offsets": [0, 4]},
                                   {"dtype": "F32", "shape": [1], "data_offsets": [0, 1 << 40]},
                                   {"dtype": "F32", "shape": ["a"], "data_offsets": [0, 4]},
                                   {"dtype": "F32", "shape": [1]}, 7])
def test_a_tensor_entry_that_lies_about_its_data_is_a_corrupt_file(tmp_path, loader, entry):
    path = tmp_path / "w.safetensors"
    F.write(path, tensors_of(TINY), {"format": F.WEIGHTS_FORMAT, "config": json.dumps(TINY)})
    header, payload = split(path.read_bytes())
    header["layers.0.dt"] = entry
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(rehash(header, payload))
    with pytest.raises(F.CorruptFileError, match="forged.safetensors: tensor 'layers.0.dt'"):
        loader(forged)


def checkpoint(path, epoch=3):
    tensors = tensors_of(TINY)
    tensors.update({f"adam.{m}.{k}": v * 0.5 for k, v in tensors_of(TINY, 1).items() for m in ("exp_avg",)})
    tensors.update({f"adam.exp_avg_sq.{k}": v for k, v in tensors_of(TINY, 2).items()})
    state = {"epoch": epoch, "step": 10 * epoch, "early": {"best": 0.5, "best_epoch": epoch, "bad_epochs": 0},
             "seconds": 1.5, "best_psnr": 20.0}
    F.write_checkpoint(path, tensors, config=TINY, state=state, adam_steps={k: 30.0 for k in F.expected_shapes(TINY)},
                       rng={"torch": "AAAA", "cuda": ["AAAA"]})


def test_a_checkpoint_reads_back(tmp_path):
    checkpoint(tmp_path / "c.safetensors")
    tensors, metadata, state = F.read_checkpoint(tmp_path / "c.safetensors")
    assert state["epoch"] == 3 and len(tensors) == 3 * len(F.expected_shapes(TINY))


@pytest.mark.parametrize("edit", ["swap a parameter and its Adam moment", "epoch", "state type"])
def test_an_edited_checkpoint_is_refused(tmp_path, edit):
    path = tmp_path / "c.safetensors"
    checkpoint(path)
    header, payload = split(path.read_bytes())
    if edit == "epoch":
        header["__metadata__"]["epoch"] = "2"          # would skip an epoch in metrics.csv on --resume
        data = join(header, payload)
        message = "the file does not match its SHA-256"
    elif edit == "state type":
        header["__metadata__"]["epoch"] = '"three"'
        data = rehash(header, payload)
        message = "the checkpoint's training state has values of the wrong type"
    else:
        a, b = "layers.0.dt", "adam.exp_avg.layers.0.dt"
        header[a], header[b] = header[b], header[a]     # the payload unchanged: its old hash still matched
        data = join(header, payload)
        message = "the file does not match its SHA-256"
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(data)
    with pytest.raises(F.CorruptFileError, match=f"forged.safetensors: {message}"):
        F.read_checkpoint(forged)


def test_an_adam_moment_of_no_parameter_is_refused(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint(path)
    tensors, metadata, _ = F.read_checkpoint(path)
    tensors["adam.exp_avg.layers.9.dt"] = np.zeros((), np.float32)
    forged = tmp_path / "forged.safetensors"
    F.write(forged, tensors, metadata)
    with pytest.raises(F.CorruptFileError, match="'adam.exp_avg.layers.9.dt' is not an Adam moment"):
        F.read_checkpoint(forged)


def legacy(path, tensors, metadata):
    """A file as written before the checksum covered the header: ``sha256`` of the payload only."""
    from safetensors.numpy import save

    data = save(tensors, metadata=metadata)
    payload = split(data)[1]
    path.write_bytes(save(tensors, metadata={**metadata, "sha256": hashlib.sha256(payload).hexdigest()}))


def test_old_files_load_with_a_warning_and_old_checkpoints_resume(tmp_path):
    import diffnet_torch

    legacy(tmp_path / "w.safetensors", tensors_of(TINY), {"format": F.WEIGHTS_FORMAT, "config": json.dumps(TINY)})
    with pytest.warns(F.UnverifiedHeaderWarning, match="w.safetensors: written before the checksum covered"):
        model = diffnet_torch.load_weights(tmp_path / "w.safetensors")
    assert float(model.layers[0].dt.detach()) == float(tensors_of(TINY)["layers.0.dt"])
    checkpoint(tmp_path / "c.safetensors")
    tensors, metadata, _ = F.read_checkpoint(tmp_path / "c.safetensors")
    legacy(tmp_path / "old.safetensors", tensors, {k: v for k, v in metadata.items() if k != F.CHECKSUM_KEY})
    with pytest.warns(F.UnverifiedHeaderWarning):
        assert F.read_checkpoint(tmp_path / "old.safetensors")[2]["epoch"] == 3
    # The payload is still verified in an old file.
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(data[:-4] + b"\1\2\3\4")
    with pytest.raises(F.CorruptFileError, match="bad.safetensors: the tensor data does not match"):
        diffnet_torch.load_weights(tmp_path / "bad.safetensors")


def test_the_shipped_weights_are_verified_without_a_warning():
    path = files("diffnet_torch") / "weights" / "natural_pm_inverse.safetensors"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config, tensors = F.read_weights(path)
    assert F.CHECKSUM_KEY in F.read(path)[1] and set(tensors) == set(F.expected_shapes(config))


@pytest.mark.parametrize("key, value", [
    ("epoch", "true"), ("step", "-1"), ("seconds", "NaN"), ("best_psnr", '"20"'), ("early", "{}"),
    ("early", '{"best": "x", "best_epoch": 3, "bad_epochs": 0}'),
    ("early", '{"best": 0.5, "best_epoch": 3.5, "bad_epochs": 0}'),
    ("adam_steps", '{"layers.0.dt": "30"}'), ("adam_steps", '{"layers.7.dt": 30}'), ("adam_steps", "[]"),
    ("rng", '{"torch": 5}'), ("rng", '["a"]'),
])
def test_a_checkpoint_s_training_state_of_the_wrong_type_is_refused(tmp_path, key, value):
    """Correctly rehashed (a forger can), so only the type checks stand between these values and the trainers'
    ``restore`` (which would raise bare TypeError / KeyError or resume from nonsense)."""
    path = tmp_path / "c.safetensors"
    checkpoint(path)
    header, payload = split(path.read_bytes())
    header["__metadata__"][key] = value
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(rehash(header, payload))
    with pytest.raises(F.CorruptFileError, match="forged.safetensors: the checkpoint's training state has values"):
        F.read_checkpoint(forged)


RUN = ["--task", "deconvolution", "--data", "disks", "--image-size", "12", "--train-size", "8", "--test-size", "4",
       "--epochs", "2", "--stop-after", "1", "--batch-size", "4", "--layers", "1", "--model", "linear", "--threads",
       "1", "--quiet"]


def cli_mains():
    from diffnet_torch.cli import main

    found = [pytest.param(main, id="torch")]
    try:
        from diffnet_jax.cli import main as jax_main
    except ImportError:
        return found
    return found + [pytest.param(jax_main, id="jax")]


@pytest.mark.parametrize("main", cli_mains())
def test_resume_refuses_a_checkpoint_of_another_model(tmp_path, capsys, main):
    """A self-consistent, correctly hashed checkpoint of a 2-layer network in a 1-layer run: it resumed (loading
    the first layer only) before the checkpoint's config was compared with the run's model."""
    out = tmp_path / "run"
    assert main(["train", *RUN, "--out", str(out)]) == 0
    path = out / "checkpoint.safetensors"
    tensors, metadata, _ = F.read_checkpoint(path)
    config = {**json.loads(metadata["config"]), "n_layers": 2}
    for prefix in ("", "adam.exp_avg.", "adam.exp_avg_sq."):
        for name in ("diagonals", "dt"):
            tensors[f"{prefix}layers.1.{name}"] = tensors[f"{prefix}layers.0.{name}"]
    steps = json.loads(metadata["adam_steps"])
    steps.update({"layers.1.diagonals": steps["layers.0.diagonals"], "layers.1.dt": steps["layers.0.dt"]})
    F.write(path, tensors, {**metadata, "config": json.dumps(config), "adam_steps": json.dumps(steps)})
    F.read_checkpoint(path)     # the file itself is valid
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    # Found once the run's model is built (after the run directory's checks, which exit 2): exit 1.
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint.safetensors: the checkpoint is of the model" in err and "not of the run's model" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before    # nothing written


@pytest.mark.parametrize("main", cli_mains())
def test_a_run_with_an_old_format_checkpoint_resumes(tmp_path, main):
    """Runs under way when the format changed (their checkpoints hash the payload only) resume, with the
    warning; the checkpoint they write next is of the new format."""
    out = tmp_path / "run"
    assert main(["train", *RUN, "--out", str(out)]) == 0
    path = out / "checkpoint.safetensors"
    tensors, metadata, _ = F.read_checkpoint(path)
    legacy(path, tensors, {k: v for k, v in metadata.items() if k != F.CHECKSUM_KEY})
    with pytest.warns(F.UnverifiedHeaderWarning, match="checkpoint.safetensors: written before the checksum"):
        assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert F.read_checkpoint(path)[2]["epoch"] == 2


def test_a_forged_config_allocates_a_small_multiple_of_the_file(tmp_path):
    """The issue's 1.6 KB file asking for [8192, 8192] diagonals (3.9 GB in PyTorch): peak traced memory of
    reading it (NumPy's allocations are traced) stays a small multiple of the file's size."""
    import tracemalloc

    path = tmp_path / "forged.safetensors"
    forged = {"model": "linear", "grid_shape": [8192, 8192], "n_layers": 1, "final_relu": False}
    F.write(path, tensors_of(TINY), {"format": F.WEIGHTS_FORMAT, "config": json.dumps(forged)})
    tracemalloc.start()
    try:
        with pytest.raises(F.CorruptFileError, match="forged.safetensors: the tensors are not those of the model"):
            F.read_weights(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * path.stat().st_size < 1 << 20      # kilobytes, where the model would be gigabytes


@pytest.mark.parametrize("key", ["epoch", "early", "adam_steps", "rng", "config", "format"])
def test_a_checkpoint_without_a_metadata_entry_is_refused(tmp_path, key):
    path = tmp_path / "c.safetensors"
    checkpoint(path)
    header, payload = split(path.read_bytes())
    del header["__metadata__"][key]
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(rehash(header, payload))
    with pytest.raises(F.CorruptFileError, match="forged.safetensors: "):
        F.read_checkpoint(forged)


@pytest.mark.parametrize("framework", [name for name, *_ in loaders()])
def test_old_weights_load_with_a_warning_in_both_frameworks(tmp_path, framework):
    load = next(entry for entry in loaders() if entry[0] == framework)[1]
    tensors = tensors_of(TINY)
    legacy(tmp_path / "w.safetensors", tensors, {"format": F.WEIGHTS_FORMAT, "config": json.dumps(TINY)})
    with pytest.warns(F.UnverifiedHeaderWarning, match="w.safetensors: written before the checksum covered"):
        model = load(tmp_path / "w.safetensors")
    if framework == "torch":
        from diffnet_torch.models import state_tensors as state_of
    else:
        from diffnet_jax import state_dict as state_of
    state = state_of(model)
    assert set(state) == set(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(np.asarray(state[name]), value)


def test_a_header_with_a_repeated_name_is_refused(tmp_path, loader):
    """Which of two entries of one name counts would be up to the parser (the checksum's or safetensors')."""
    path = tmp_path / "w.safetensors"
    F.write(path, tensors_of(TINY), {"format": F.WEIGHTS_FORMAT, "config": json.dumps(TINY)})
    header, payload = split(path.read_bytes())
    raw = json.dumps(header).encode()
    entry = json.dumps(header["layers.0.dt"]).encode()
    raw = raw[:-1] + b', "layers.0.dt": ' + entry + b"}"
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)
    with pytest.raises(F.CorruptFileError, match="forged.safetensors: not a readable safetensors header .*repeated"):
        loader(forged)
