#!/usr/bin/env python3
"""Writes the hand-made broken inputs of tests/bad/: one file (or model directory) per
failure class of the safetensors and .npy readers. Plain python3, no third-party modules.

    python3 tests/make_bad_files.py        (from the repository root)

tests/test_safetensors.c and tests/test_npy.c open each file, expect an error return and
check that the message names the reason (and the tensor / position where there is one).
"""
import json
import os
import shutil
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")


WRITTEN = []


def write(name, data):
    WRITTEN.append(name)
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ----------------------------------------------------------------- safetensors


def st_raw(header_text, data=b"", pad=True):
    """A safetensors file from literal header text (not re-serialised, so it may be
    malformed on purpose) and raw data bytes."""
    h = header_text.encode("utf-8") if isinstance(header_text, str) else header_text
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st_file(entries, data, metadata=None):
    """entries: list of (name, dtype, shape, [begin, end]) in header order."""
    parts = []
    if metadata is not None:
        parts.append('"__metadata__":' + json.dumps(metadata))
    for name, dtype, shape, offs in entries:
        parts.append(
            json.dumps(name)
            + ':{"dtype":"%s","shape":%s,"data_offsets":%s}'
            % (dtype, json.dumps(shape), json.dumps(offs))
        )
    return st_raw("{" + ",".join(parts) + "}", data)


def f32(*vals):
    return struct.pack("<%df" % len(vals), *vals)


def make_safetensors():
    d16 = f32(1, 2, 3, 4)
    good = [("w", "F32", [2, 2], [0, 16])]

    # file too short to hold the 8-byte header length
    write("st_truncated_short.safetensors", b"\x10\x00\x00\x00\x00")
    # a valid file with its last 4 data bytes cut off
    write("st_truncated_data.safetensors", st_file(good, d16)[:-4])
    # header length N larger than the file
    write("st_header_len_beyond_file.safetensors", struct.pack("<Q", 1000) + b"{}" + b" " * 6)
    # header length above the 100 MB limit (file itself is tiny)
    write("st_header_len_too_large.safetensors", struct.pack("<Q", 200_000_000) + b"{}" + b" " * 6)
    # header is not JSON
    write("st_header_not_json.safetensors", st_raw('{"w": {"dtype": "F32", ', d16))
    # header is JSON but not an object
    write("st_header_not_object.safetensors", st_raw("[1, 2, 3]"))
    # garbage after the JSON object inside the header
    write("st_header_trailing_garbage.safetensors",
          st_raw('{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}} xyz', d16))
    # 4 extra bytes after the last tensor ("polyglot" file)
    write("st_trailing_bytes.safetensors", st_file(good, d16 + b"JUNK"))
    # hole between two tensors: [0,8) and [12,20) with 20 data bytes
    write("st_hole.safetensors",
          st_file([("a", "F32", [2], [0, 8]), ("b", "F32", [2], [12, 20])], f32(1, 2, 3, 4, 5)))
    # overlapping tensors: [0,8) and [4,12)
    write("st_overlap.safetensors",
          st_file([("a", "F32", [2], [0, 8]), ("b", "F32", [2], [4, 12])], f32(1, 2, 3)))
    # offsets far beyond the data section
    write("st_offsets_out_of_range.safetensors",
          st_file([("w", "F32", [4], [1000000, 1000016])], d16))
    # begin > end
    write("st_offsets_reversed.safetensors", st_file([("w", "F32", [0], [16, 0])], d16))
    # byte size differs from shape x dtype: [2,2] F32 needs 16 bytes, offsets give 12
    write("st_nbytes_mismatch.safetensors", st_file([("w", "F32", [2, 2], [0, 12])], f32(1, 2, 3)))
    # dtype outside the allow-list
    write("st_unknown_dtype.safetensors", st_file([("w", "Q4", [4], [0, 16])], d16))
    # negative shape entry
    write("st_negative_shape.safetensors", st_file([("w", "F32", [-1, 4], [0, 16])], d16))
    # non-integer shape entry
    write("st_non_integer_shape.safetensors",
          st_raw('{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,16]}}', d16))
    # integer value written as a float (4.0): rejected by the lexical check
    write("st_float_form_shape.safetensors",
          st_raw('{"w":{"dtype":"F32","shape":[4.0],"data_offsets":[0,16]}}', d16))
    # dims whose product overflows 64 bits: 2^32 * 2^32 * 16 elements
    write("st_shape_overflow.safetensors",
          st_file([("w", "F32", [4294967296, 4294967296, 16], [0, 16])], d16))
    # shape entry beyond 2^53 (cannot be represented exactly)
    write("st_shape_too_large.safetensors",
          st_raw('{"w":{"dtype":"F32","shape":[100000000000000000000,0],"data_offsets":[0,0]}}'))
    # more than ST_MAX_DIMS (8) dims
    write("st_too_many_dims.safetensors", st_file([("w", "F32", [1] * 9 + [4], [0, 16])], d16))
    # the same tensor name twice (JSON allows it, cJSON keeps both)
    write("st_duplicate_name.safetensors",
          st_file([("w", "F32", [2], [0, 8]), ("w", "F32", [2], [8, 16])], d16))
    # __metadata__ with a non-string value
    write("st_bad_metadata.safetensors", st_file(good, d16, metadata={"format": "pt", "step": 5}))
    # __metadata__ with a duplicate key
    write("st_metadata_duplicate_key.safetensors",
          st_raw('{"__metadata__":{"k":"a","k":"b"},'
                 '"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', d16))
    # empty tensor name
    write("st_empty_name.safetensors", st_file([("", "F32", [4], [0, 16])], d16))
    # a tensor entry without data_offsets
    write("st_missing_field.safetensors", st_raw('{"w":{"dtype":"F32","shape":[4]}}', d16))
    # raw control character (a tab) inside a tensor name: JSON forbids it
    write("st_control_char.safetensors",
          st_raw('{"a\tb":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', d16))
    # tensor name that is not valid UTF-8
    write("st_invalid_utf8.safetensors",
          st_raw(b'{"w\xff":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', d16))

    # Expected-tensor registry (the C test expects a:[4] and b:[2,3], allows suffix
    # "rotary_emb.inv_freq"): valid files that do not match it.
    a = ("a", "F32", [4], [0, 16])
    write("st_expect_missing.safetensors", st_file([a], d16))
    write("st_expect_wrong_shape.safetensors",
          st_file([a, ("b", "F32", [3, 2], [16, 40])], d16 + f32(0, 1, 2, 3, 4, 5)))
    write("st_expect_extra.safetensors",
          st_file([a, ("b", "F32", [2, 3], [16, 40]), ("c.weight", "F32", [1], [40, 44])],
                  d16 + f32(0, 1, 2, 3, 4, 5, 6)))
    write("st_expect_int_dtype.safetensors",
          st_file([a, ("b", "I32", [2, 3], [16, 40])], d16 + struct.pack("<6i", 0, 1, 2, 3, 4, 5)))


def st_dir(name, index, shards):
    """A model directory: index dict (or raw text) + {file name: file bytes}."""
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    text = index if isinstance(index, str) else json.dumps(index, indent=2)
    write(os.path.join(name, "model.safetensors.index.json"), text.encode())
    for fname, data in shards.items():
        write(os.path.join(name, fname), data)


def make_shards():
    s1n, s2n = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    s1 = st_file([("a", "F32", [2], [0, 8])], f32(1, 2))
    s2 = st_file([("b", "F32", [2], [0, 8])], f32(3, 4))
    meta = {"total_size": 16}
    # index names a shard file that does not exist
    st_dir("st_shard_missing_file", {"metadata": meta, "weight_map": {"a": s1n, "b": s2n}},
           {s1n: s1})
    # index with a '../' path
    st_dir("st_shard_dotdot", {"metadata": meta, "weight_map": {"a": s1n, "b": "../" + s2n}},
           {s1n: s1, s2n: s2})
    # index with a path separator
    st_dir("st_shard_slash", {"metadata": meta, "weight_map": {"a": s1n, "b": "sub/" + s2n}},
           {s1n: s1, s2n: s2})
    # '..' alone (no separator) and an empty file name
    st_dir("st_shard_dotdot_only", {"metadata": meta, "weight_map": {"a": s1n, "b": ".."}},
           {s1n: s1, s2n: s2})
    st_dir("st_shard_empty_name", {"metadata": meta, "weight_map": {"a": s1n, "b": ""}},
           {s1n: s1, s2n: s2})
    # tensor listed in the index for a shard that does not contain it
    st_dir("st_shard_absent_tensor",
           {"metadata": meta, "weight_map": {"a": s1n, "b": s2n, "c": s1n}}, {s1n: s1, s2n: s2})
    # tensor listed for the wrong shard ('b' is in shard 2, the index says shard 1)
    s2w = st_file([("b", "F32", [2], [0, 8]), ("x", "F32", [1], [8, 12])], f32(3, 4, 5))
    st_dir("st_shard_wrong_shard",
           {"metadata": meta, "weight_map": {"a": s1n, "b": s1n, "x": s2n}}, {s1n: s1, s2n: s2w})
    # shard holds a tensor the index does not list
    s2x = st_file([("b", "F32", [2], [0, 8]), ("d", "F32", [1], [8, 12])], f32(3, 4, 5))
    st_dir("st_shard_unlisted_tensor", {"metadata": meta, "weight_map": {"a": s1n, "b": s2n}},
           {s1n: s1, s2n: s2x})
    # the same tensor in two shards
    s2d = st_file([("a", "F32", [2], [0, 8]), ("b", "F32", [2], [8, 16])], f32(3, 4, 5, 6))
    st_dir("st_shard_duplicate", {"metadata": meta, "weight_map": {"a": s1n, "b": s2n}},
           {s1n: s1, s2n: s2d})
    # a shard that is itself broken (overlapping offsets)
    s2o = st_file([("b", "F32", [2], [0, 8]), ("e", "F32", [2], [4, 12])], f32(3, 4, 5))
    st_dir("st_shard_bad_shard", {"metadata": meta, "weight_map": {"a": s1n, "b": s2n, "e": s2n}},
           {s1n: s1, s2n: s2o})
    # index that is not JSON / has no weight_map / duplicate names in weight_map
    st_dir("st_shard_index_not_json", '{"weight_map": {"a": ', {s1n: s1})
    st_dir("st_shard_index_no_weight_map", {"metadata": meta}, {s1n: s1})
    st_dir("st_shard_index_two_weight_maps",
           '{"weight_map": {"a": "%s"}, "weight_map": {"b": "%s"}}' % (s1n, s2n),
           {s1n: s1, s2n: s2})
    st_dir("st_shard_index_duplicate",
           '{"weight_map": {"a": "%s", "b": "%s", "a": "%s"}}' % (s1n, s2n, s1n),
           {s1n: s1, s2n: s2})


# ------------------------------------------------------------------------- npy


def npy_raw(header, data=b"", version=(1, 0), magic=b"\x93NUMPY"):
    h = header.encode("latin1")
    lenfmt = "<H" if version[0] == 1 else "<I"
    pre = len(magic) + 2 + struct.calcsize(lenfmt)
    h += b" " * (-(pre + len(h) + 1) % 64) + b"\n"
    return magic + bytes(version) + struct.pack(lenfmt, len(h)) + h + data


def npy_hdr(descr, shape, fortran=False):
    shape_txt = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    return "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape_txt)


def i32(*vals):
    return struct.pack("<%di" % len(vals), *vals)


def make_npy():
    d6 = i32(1, 2, 3, 4, 5, 6)
    write("npy_bad_magic.npy", npy_raw(npy_hdr("<i4", [6]), d6, magic=b"\x93NUMPX"))
    write("npy_bad_version.npy", npy_raw(npy_hdr("<i4", [6]), d6, version=(4, 0)))
    write("npy_big_endian.npy", npy_raw(npy_hdr(">i4", [6]), struct.pack(">6i", 1, 2, 3, 4, 5, 6)))
    write("npy_fortran_order.npy", npy_raw(npy_hdr("<i4", [2, 3], fortran=True), d6))
    write("npy_bad_descr.npy", npy_raw(npy_hdr("<f8", [3]), struct.pack("<3d", 1, 2, 3)))
    write("npy_truncated_data.npy", npy_raw(npy_hdr("<i4", [2, 3]), d6[:-4]))
    write("npy_extra_data.npy", npy_raw(npy_hdr("<i4", [2, 3]), d6 + b"\0\0\0\0"))
    good = npy_raw(npy_hdr("<i4", [2, 3]), d6)
    write("npy_header_len_beyond.npy", good[:8] + struct.pack("<H", 5000) + good[10:])
    write("npy_truncated_header.npy", good[:40])
    write("npy_shape_not_tuple.npy", npy_raw("{'descr': '<i4', 'fortran_order': False, "
                                             "'shape': (6), }", d6))
    write("npy_negative_dim.npy", npy_raw(npy_hdr("<i4", [-1, 6]), d6))
    write("npy_missing_key.npy", npy_raw("{'descr': '<i4', 'shape': (6,), }", d6))
    write("npy_shape_overflow.npy", npy_raw(npy_hdr("<i8", [4294967296, 4294967296]), d6))
    # token-id files (the C test reads them with vocab = 50)
    write("npy_ids_ge_vocab.npy", npy_raw(npy_hdr("<i4", [2, 3]), i32(1, 2, 3, 4, 5, 50)))
    write("npy_ids_negative.npy", npy_raw(npy_hdr("<i8", [4]), struct.pack("<4q", 0, 7, -3, 9)))
    write("npy_ids_3d.npy", npy_raw(npy_hdr("<i4", [1, 2, 3]), d6))
    write("npy_ids_float.npy", npy_raw(npy_hdr("<f4", [3]), f32(1, 2, 3)))
    write("npy_ids_empty.npy", npy_raw(npy_hdr("<i4", [0])))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_safetensors()
    make_shards()
    make_npy()
    print("wrote %d files under %s" % (len(WRITTEN), OUT))
