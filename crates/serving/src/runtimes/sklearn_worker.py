"""Oxflow's scikit-learn worker: loads one joblib/pickle model and answers
inference requests framed on a Unix socket (argv[2]).

Frame: a 4-byte little-endian length, that many bytes of JSON header, then
the raw tensor bytes the header's "size" fields add up to (the layout of
the Open Inference Protocol's binary extension: little-endian, row-major;
BYTES elements each prefixed by a 4-byte length).

The first frame the worker writes says whether the model loaded. Anything
the model prints goes to stderr, so it cannot corrupt the protocol.
"""
import json
import struct
import sys
import traceback

DTYPES = {
    "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}
METHODS = ("predict", "predict_proba", "transform", "decision_function")


def read_exact(stream, n):
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(stream):
    head = read_exact(stream, 4)
    if head is None:
        return None, None
    (n,) = struct.unpack("<I", head)
    header = json.loads(read_exact(stream, n))
    size = sum(t.get("size", 0) for t in header.get("inputs", []))
    payload = read_exact(stream, size) if size else b""
    return header, payload


def write_frame(stream, header, blobs=()):
    data = json.dumps(header).encode()
    stream.write(struct.pack("<I", len(data)))
    stream.write(data)
    for b in blobs:
        stream.write(b)
    stream.flush()


def load(path):
    import joblib

    try:
        return joblib.load(path)
    except Exception:
        import pickle

        with open(path, "rb") as f:
            return pickle.load(f)


def decode_input(np, spec, blob):
    shape = spec["shape"]
    if spec["datatype"] == "BYTES":
        items, pos = [], 0
        while pos < len(blob):
            (n,) = struct.unpack_from("<I", blob, pos)
            pos += 4
            raw = blob[pos:pos + n]
            pos += n
            try:
                items.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                items.append(raw)
        arr = np.empty(len(items), dtype=object)
        arr[:] = items
        return arr.reshape(shape)
    return np.frombuffer(blob, dtype=DTYPES[spec["datatype"]]).reshape(shape)


def encode_output(np, name, value):
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if kind == "b":
        return {"name": name, "datatype": "BOOL", "shape": list(arr.shape)}, arr.astype("?").tobytes()
    if kind == "i":
        return {"name": name, "datatype": "INT64", "shape": list(arr.shape)}, arr.astype("<i8").tobytes()
    if kind == "u":
        return {"name": name, "datatype": "UINT64", "shape": list(arr.shape)}, arr.astype("<u8").tobytes()
    if kind == "f":
        dt, code = ("FP32", "<f4") if arr.dtype.itemsize <= 4 else ("FP64", "<f8")
        return {"name": name, "datatype": dt, "shape": list(arr.shape)}, arr.astype(code).tobytes()
    parts = []
    for item in arr.reshape(-1):
        b = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(struct.pack("<I", len(b)) + b)
    return {"name": name, "datatype": "BYTES", "shape": list(arr.shape)}, b"".join(parts)


def main():
    path = sys.argv[1]
    # The server listens on a Unix socket and waits for this connection;
    # stdout and stderr are the worker's log.
    import socket
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(sys.argv[2])
    out = sock.makefile("wb")
    inp = sock.makefile("rb")
    sys.stdout = sys.stderr
    try:
        import numpy as np

        model = load(path)
    except ImportError as e:
        # A module the model needs (or numpy) is missing: say which.
        write_frame(out, {"error": "%s: %s" % (type(e).__name__, e)})
        return 1
    except BaseException as e:  # noqa: BLE001 - the reason goes to the server
        # Unpickling errors quote the file's bytes ("invalid load key, 'r'"),
        # and the file may be anything: say what was expected instead.
        write_frame(out, {"error": "%s: the file is not a model that joblib or pickle can load"
                                   % type(e).__name__})
        return 1
    methods = [m for m in METHODS if callable(getattr(model, m, None))]
    if "predict" not in methods and "transform" not in methods:
        write_frame(out, {"error": "%s has neither predict nor transform" % type(model).__name__})
        return 1
    classes = getattr(model, "classes_", None)
    info = {
        "ready": True,
        "type": "%s.%s" % (type(model).__module__, type(model).__name__),
        "methods": methods,
        "n_features_in": int(getattr(model, "n_features_in_", 0) or 0),
        "n_classes": int(len(classes)) if classes is not None else 0,
        "classes_kind": np.asarray(classes).dtype.kind if classes is not None else "",
    }
    write_frame(out, info)
    while True:
        header, payload = read_frame(inp)
        if header is None:
            return 0
        try:
            arrays, pos = [], 0
            for spec in header["inputs"]:
                arrays.append(decode_input(np, spec, payload[pos:pos + spec["size"]]))
                pos += spec["size"]
            if len(arrays) != 1:
                raise ValueError("a scikit-learn model takes one input tensor, got %d" % len(arrays))
            x = arrays[0]
            wanted = header.get("outputs") or [methods[0] if "predict" not in methods else "predict"]
            specs, blobs = [], []
            for name in wanted:
                if name not in methods:
                    specs.append({"name": name, "missing": True})
                    continue
                spec, blob = encode_output(np, name, getattr(model, name)(x))
                spec["size"] = len(blob)
                specs.append(spec)
                blobs.append(blob)
            write_frame(out, {"outputs": specs}, blobs)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            write_frame(out, {"error": "%s: %s" % (type(e).__name__, e), "kind": "invalid"})
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            write_frame(out, {"error": "%s: %s" % (type(e).__name__, e), "kind": "internal"})


if __name__ == "__main__":
    sys.exit(main())
