"""The worker's end of the pipes: learner values leave as plain data or handles, grader values arrive."""

from __future__ import annotations

import pytest
import torch

from tfmcourse.grading.secure import channel, proxy, rebuild, wire
from tfmcourse.grading.secure.wire import ProtocolError, Tag


@pytest.fixture(autouse=True)
def handles():
    rebuild.capture()
    channel.HANDLES.clear()
    yield channel.HANDLES
    channel.HANDLES.clear()


def from_learner(value):
    """``value`` as the worker encodes it for the grader: (JSON-able form, buffers)."""
    bufs: list[bytes] = []
    return wire.encode(value, bufs, lambda v: channel.encode_hook(v, bufs)), bufs


def test_learner_objects_stay_behind_as_handles_and_come_back_as_themselves(handles):
    def attend(q):
        return q

    layer = torch.nn.Linear(2, 2)
    (fn, mod), bufs = from_learner([attend, layer])
    assert fn == {"$": Tag.HANDLE, "id": 1, "type": "function", "module": False}
    assert mod == {"$": Tag.HANDLE, "id": 2, "type": "Linear", "module": True}
    assert channel.decode([fn, mod], bufs) == [attend, layer]
    assert channel.decode([fn], bufs)[0] is attend and handles[2] is layer


def test_learner_values_leave_as_plain_data_only():
    class Liar(torch.Tensor):
        pass

    t = torch.arange(6.0).reshape(2, 3)
    (enc_t, size, dtype, sub, remote), bufs = from_learner(
        [t, torch.Size([2, 3]), torch.float16, t.as_subclass(Liar), channel.Remote(7)]
    )
    assert torch.equal(wire.tensor_from_wire(torch, enc_t, bufs), t)
    assert size == {"$": Tag.TUPLE, "items": [2, 3]} and dtype == {"$": Tag.DTYPE, "v": "float16"}
    assert sub == {"$": Tag.OPAQUE, "type": "Liar (a torch.Tensor subclass)"}
    assert remote == {"$": Tag.REMOTE, "id": 7}
    got = proxy.decode_hook(None, sub, bufs)  # the grader sees only a name
    assert isinstance(got, proxy.Opaque) and not isinstance(got, torch.Tensor)


def test_grader_values_arrive_as_tensors_dtypes_and_remote_objects():
    value = {"x": {"$": "tensor", "dtype": "int64", "shape": [2], "buf": 0}, "d": {"$": "dtype", "v": "bool"}}
    got = channel.decode(
        {"$": "dict", "items": [[k, v] for k, v in value.items()]}, [torch.tensor([4, 5]).numpy().tobytes()]
    )
    assert torch.equal(got["x"], torch.tensor([4, 5])) and got["d"] is torch.bool
    remote = channel.decode({"$": "remote", "id": 3}, [])
    assert isinstance(remote, channel.Remote) and repr(remote) == "<remote object 3>"


@pytest.mark.parametrize(
    "bad", [{"$": "opaque", "type": "x"}, {"$": "dtype", "v": "object"}, {"$": "pickle"}]
)
def test_an_unknown_value_from_the_grader_is_refused(bad):
    with pytest.raises(ProtocolError, match="unknown value tag"):
        channel.decode(bad, [])
