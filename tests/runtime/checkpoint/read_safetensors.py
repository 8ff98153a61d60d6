#!/usr/bin/env python3
"""An independent reader of the published safetensors layout (standard library only):
8-byte little-endian header size, a JSON header {name: {dtype, shape, data_offsets}},
then the data. Prints one line per tensor: name, dtype, shape, element count and the
first values, for tests/runtime/checkpoint/test_checkpoint.cpp to compare."""
import json
import struct
import sys

FORMATS = {"F32": ("f", 4), "F64": ("d", 8), "I32": ("i", 4), "I64": ("q", 8), "BOOL": ("?", 1)}


def main(path):
    with open(path, "rb") as f:
        blob = f.read()
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + size])
    data = blob[8 + size:]
    for name in sorted(k for k in header if k != "__metadata__"):
        entry = header[name]
        code, width = FORMATS[entry["dtype"]]
        begin, end = entry["data_offsets"]
        count = 1
        for d in entry["shape"]:
            count *= d
        assert end - begin == count * width, name
        values = struct.unpack("<%d%s" % (count, code), data[begin:end])
        shape = "x".join(str(d) for d in entry["shape"]) or "scalar"
        print(name, entry["dtype"], shape, count, " ".join("%.9g" % v for v in values[:3]))


if __name__ == "__main__":
    main(sys.argv[1])
