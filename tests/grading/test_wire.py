"""The grading channel's format: frames of JSON and raw bytes, values that round-trip, nothing unpickled."""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import struct
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tfmcourse.grading.secure import wire
from tfmcourse.grading.secure.wire import Kind, ProtocolError


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


def no_hook(value):
    return None


def tensor_hook(bufs):
    return lambda v: wire.tensor_to_wire(torch, v, bufs) if type(v) is torch.Tensor else None


def tensor_decode(bufs):
    def hook(d):
        if d.get("$") == wire.Tag.TENSOR:
            return wire.tensor_from_wire(torch, d, bufs)
        if d.get("$") == wire.Tag.OPAQUE:
            return ("opaque", d["type"])
        raise ProtocolError("unexpected tag")

    return hook


def through_pipe(value, pipe):
    """Encode, frame, write, read, decode: what the other side of the channel gets."""
    r, w = pipe
    bufs: list[bytes] = []
    wire.send(w, Kind.RESULT, {"payload": wire.encode(value, bufs, tensor_hook(bufs))}, bufs)
    msg, got_bufs = wire.recv(r, time.monotonic() + 5)
    assert msg["op"] is Kind.RESULT
    return wire.decode(msg["payload"], got_bufs, tensor_decode(got_bufs))


scalars = st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.floats() | st.text(max_size=20)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=5) | st.integers(-5, 5), inner, max_size=4)
    ),
    max_leaves=20,
)


def same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=150, deadline=None)
@given(values)
def test_plain_values_round_trip_with_their_types(value):
    r, w = os.pipe()
    try:
        assert same(through_pipe(value, (r, w)), value)
    finally:
        os.close(r)
        os.close(w)


dtypes = st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool, torch.bfloat16, torch.uint8])
shapes = st.lists(st.integers(0, 4), max_size=4)


@settings(max_examples=60, deadline=None)
@given(dtypes, shapes, st.integers(0, 2**31))
def test_tensors_round_trip_exactly(dtype, shape, seed):
    g = torch.Generator().manual_seed(seed)
    t = (torch.randn(shape, generator=g) * 5).to(dtype)
    r, w = os.pipe()
    try:
        out = through_pipe({"t": t, "view": (t.transpose(0, -1) if t.dim() > 1 else t)}, (r, w))
    finally:
        os.close(r)
        os.close(w)
    assert type(out["t"]) is torch.Tensor and out["t"].dtype == dtype and out["t"].shape == t.shape
    assert torch.equal(out["t"], t)
    assert torch.equal(out["view"], t.transpose(0, -1) if t.dim() > 1 else t)


class Exploding:
    """Unpickling this would run code: it must never be unpickled, only named."""

    def __reduce__(self):
        return (os.system, ("echo unpickled",))


def test_an_unknown_object_comes_back_opaque(pipe):
    out = through_pipe([Exploding(), 2**80, {1.5: "float key"}], pipe)
    assert out == [("opaque", "Exploding"), ("opaque", "huge int"), ("opaque", "dict")]


def test_a_pickle_on_the_channel_is_a_protocol_error(pipe):
    r, w = pipe
    os.write(w, pickle.dumps({"op": "result", "payload": Exploding()}))
    with pytest.raises(ProtocolError, match="bad frame header"):
        wire.recv(r, time.monotonic() + 5)


def test_an_unknown_message_kind_is_refused(pipe):
    r, w = pipe
    head = b'{"op":"exit"}'
    os.write(w, wire.HEAD.pack(wire.MAGIC, len(head), 0) + head)
    with pytest.raises(ProtocolError, match="unknown message kind 'exit'"):
        wire.recv(r, time.monotonic() + 5)


def test_a_frame_larger_than_allowed_is_refused_before_it_is_read(pipe):
    r, w = pipe
    os.write(w, wire.HEAD.pack(wire.MAGIC, 10**9, 0))
    with pytest.raises(ProtocolError, match="bad frame header"):
        wire.recv(r, time.monotonic() + 5, max_bytes=1 << 20)
    head = b'{"op":"ok"}'
    os.write(w, wire.HEAD.pack(wire.MAGIC, len(head), 1) + head + struct.pack("<Q", 2 << 20))
    with pytest.raises(ProtocolError, match="larger than"):
        wire.recv(r, time.monotonic() + 5, max_bytes=1 << 20)


def test_a_truncated_frame_is_end_of_file(pipe):
    r, w = pipe
    os.write(w, wire.frame(Kind.OK, {"x": 1})[:-3])
    os.close(w)
    with pytest.raises(EOFError):
        wire.recv(r, time.monotonic() + 5)


def test_reading_and_writing_have_deadlines(pipe):
    r, w = pipe
    with pytest.raises(TimeoutError):
        wire.recv(r, time.monotonic() + 0.2)  # nothing written
    with pytest.raises(TimeoutError):
        wire.send(w, Kind.OK, {}, [b"x" * (4 << 20)], deadline=time.monotonic() + 0.2)  # nobody reads


def test_malformed_tensors_are_refused():
    bufs = [b"\x00" * 8]
    with pytest.raises(ProtocolError, match="does not match"):
        wire.tensor_from_wire(torch, {"dtype": "float32", "shape": [3], "buf": 0}, bufs)
    with pytest.raises(ProtocolError, match="malformed tensor"):
        wire.tensor_from_wire(torch, {"dtype": "object", "shape": [2], "buf": 0}, bufs)
    with pytest.raises(ProtocolError, match="malformed tensor"):
        wire.tensor_from_wire(torch, {"dtype": "float32", "shape": [2], "buf": 5}, bufs)


def test_deep_nesting_is_refused_both_ways():
    deep: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        wire.encode(deep, [], no_hook)
    with pytest.raises(ProtocolError, match="nested too deeply"):
        wire.decode(deep, [], no_hook)


def test_every_message_kind_is_one_enum():
    kinds = {k.value for k in Kind}
    assert len(kinds) == len(Kind) and "exit" not in kinds
    assert all(k in Kind for k in wire.MODULE_OPS)
