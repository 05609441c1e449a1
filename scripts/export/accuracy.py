#!/usr/bin/env python3
"""Test accuracy of one task from a `hypertape export` file, with numpy alone.

    python3 scripts/export/accuracy.py task1.safetensors [data/mnist]

Reads the safetensors file (header and tensors) and the MNIST IDX test files, maps each image
to the network's inputs with the file's input map and scaling, runs the layers the metadata
names and prints the percent of the task's test samples whose largest output of the task's
head is their digit: the number `hypertape eval` prints with the task identity given.
The format is docs/export.md.
"""
import gzip, json, struct, sys
import numpy as np

def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])                  # header length, little-endian u64
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header.pop("__metadata__")["hypertape"])
    dtypes = {"F32": "<f4", "I32": "<i4"}
    tensors = {name: np.frombuffer(raw[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]],
                                   dtypes[t["dtype"]]).reshape(t["shape"])
               for name, t in header.items()}
    return tensors, meta

def read_idx(path):                                       # gzip-compressed IDX of unsigned bytes
    raw = gzip.open(path, "rb").read()
    dims = struct.unpack(">" + "I" * raw[3], raw[4:4 + 4 * raw[3]])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)

def main(path, data="data/mnist"):
    t, meta = load_safetensors(path)
    images = read_idx(f"{data}/t10k-images-idx3-ubyte.gz").reshape(-1, 28 * 28)
    labels = read_idx(f"{data}/t10k-labels-idx1-ubyte.gz")
    classes = meta["classes"]                             # output j of the head is digit classes[j]
    keep = np.isin(labels, classes)
    pixels = images[keep].astype(np.float32) / np.float32(meta["input_divisor"])
    imap = t["input_map"]                                 # source pixel per input, -1: padding
    x = np.where(imap >= 0, pixels[:, np.maximum(imap, 0)], 0).astype(np.float64)
    act = {"relu": lambda z: np.maximum(z, 0), "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
           "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh}[meta["activation"]]
    for name in meta["layers"][:-1]:                      # hidden layers: x W^T + b, activation
        x = act(x @ t[f"{name}.weight"].T.astype(np.float64) + t[f"{name}.bias"])
    h, d = int(meta["head"]), int(meta["head_dim"])       # the task's head: rows h*d to h*d + d - 1
    out = meta["layers"][-1]
    logits = x @ t[f"{out}.weight"][h * d:(h + 1) * d].T.astype(np.float64) + t[f"{out}.bias"][h * d:(h + 1) * d]
    target = np.array([classes.index(label) for label in labels[keep]])
    correct = int((logits.argmax(axis=1) == target).sum())
    print(f"task {meta['task']} ({meta['spec']}, {meta['method']} {meta['scenario']}): "
          f"{correct} of {len(target)} test samples correct, {100 * correct / len(target):.2f} %")

if __name__ == "__main__":
    main(*sys.argv[1:])
