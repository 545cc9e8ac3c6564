"""Writes state_dict_python.bin: the bytes Python's torch.save(model.state_dict(), f) produces
(zip format, pickle protocol 2, a collections.OrderedDict carrying a _metadata attribute,
tensors rebuilt through torch._utils._rebuild_tensor_v2 from persistent storages), without
needing torch installed. Stand-in classes named like torch's make pickle emit the same
GLOBAL opcodes torch's pickler would. Also writes plain_dict_python.bin: the same tensors (plus a transposed view and a bfloat16
tensor) in a plain dict, which is what recent transformers versions save per shard and
what libtorch's own pickle_load can read. Run: python3 make_torch_save_fixture.py
"""
import collections, io, pickle, struct, sys, types, zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
torch._utils = utils


def storage_class(name):
    cls = type(name, (), {})
    cls.__module__ = "torch"
    setattr(torch, name, cls)
    return cls


FloatStorage = storage_class("FloatStorage")
LongStorage = storage_class("LongStorage")
HalfStorage = storage_class("HalfStorage")
BFloat16Storage = storage_class("BFloat16Storage")


class Storage:
    def __init__(self, key, cls, fmt, values):
        self.key, self.cls, self.fmt, self.values = key, cls, fmt, values

    def raw(self):
        return b"".join(struct.pack("<" + self.fmt, v) for v in self.values)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce_ex__(self, protocol):
        return (_rebuild_tensor_v2,
                (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
                 collections.OrderedDict()))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", len(obj.values))
        return None


weight = Storage("0", FloatStorage, "f", [0.5 * i - 1.0 for i in range(6)])
ids = Storage("1", LongStorage, "q", [3, -1, 1 << 40])
half = Storage("2", HalfStorage, "e", [1.5, -2.0])
state = collections.OrderedDict()
state["encoder.weight"] = Tensor(weight, 0, [2, 3], [3, 1])
state["encoder.ids"] = Tensor(ids, 0, [3], [1])
# A view with an offset into a shared storage, as tied or sliced parameters produce.
state["encoder.row1"] = Tensor(weight, 3, [3], [1])
state["encoder.half"] = Tensor(half, 0, [2], [1])
state._metadata = collections.OrderedDict([("", {"version": 1}), ("encoder", {"version": 1})])



def save(path, obj, storages):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for s in storages:
            z.writestr("archive/data/" + s.key, s.raw())
        z.writestr("archive/version", "3\n")


save("state_dict_python.bin", state, (weight, ids, half))

# bfloat16 has no struct code: store the upper halves of float32 bit patterns (1.5, -2).
bf16 = Storage("3", BFloat16Storage, "H", [0x3fc0, 0xc000])
plain = {
    "encoder.weight": state["encoder.weight"],
    "encoder.ids": state["encoder.ids"],
    "encoder.half": state["encoder.half"],
    # The transpose of encoder.weight: shape [3, 2], strides [1, 3], not contiguous.
    "encoder.weight_t": Tensor(weight, 0, [3, 2], [1, 3]),
    "encoder.bf16": Tensor(bf16, 0, [2], [1]),
    "encoder.scalar": Tensor(weight, 5, [], []),
}
save("plain_dict_python.bin", plain, (weight, ids, half, bf16))
