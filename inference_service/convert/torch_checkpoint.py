"""Reads a PyTorch `torch.save` checkpoint (zip format) into numpy arrays, without torch.

A checkpoint is a zip holding `<prefix>/data.pkl` (a pickle of the state dict) and one file per
tensor storage under `<prefix>/data/<key>`. The pickle refers to storages through persistent ids
and rebuilds tensors with `torch._utils._rebuild_tensor_v2`. A general unpickler would run any
callable the file names; this one resolves only the few globals a state dict needs and refuses
everything else, so a tampered file cannot execute code.
"""

import collections
import io
import pickle
import zipfile

import numpy as np

# Storage classes a state dict may name, and the numpy dtype of their elements.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """numpy version of torch's tensor rebuild: a strided view of the storage, copied."""
    if len(size) == 0:
        return np.array(storage[storage_offset], dtype=storage.dtype)
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.ascontiguousarray(view)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data, archive, prefix):
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._storages = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the checkpoint")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}/data/{key}")
            array = np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder("<"))
            if array.size != numel:
                raise pickle.UnpicklingError(f"storage {key}: {array.size} elements, expected {numel}")
            self._storages[key] = array
        return self._storages[key]


def load_state_dict(checkpoint):
    """The state dict of a checkpoint (path, bytes or file object) as {name: numpy array}."""
    if isinstance(checkpoint, (bytes, bytearray)):
        checkpoint = io.BytesIO(checkpoint)
    with zipfile.ZipFile(checkpoint) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError("not a zip-format torch checkpoint (no single */data.pkl)")
        prefix = pickles[0][: -len("/data.pkl")]
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise ValueError("big-endian checkpoints are not supported")
        state = _RestrictedUnpickler(archive.read(pickles[0]), archive, prefix).load()
    if not isinstance(state, dict):
        raise ValueError("the checkpoint does not hold a state dict")
    return dict(state)
