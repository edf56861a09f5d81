#!/usr/bin/env python3
"""Checks that the library's headers only include headers of their own layer or below.

Layers, lowest first (a folder of include/smallcoder/, or a header at its root):
  base     error.hpp, random.hpp, threads.hpp, config.hpp
  tensor   element types, quantized blocks, tensor views
  text     UTF-8, protobuf, the SentencePiece tokenizer
  io       readers and writers of file formats (JSON, safetensors, GGUF, mapped files)
  model    config + weights + transformer: loading, converting, random and saved weights
  backend  cpu/ (with cpu/kernels/) and cuda/, which never include each other
  generate sampling, stop strings, the generation loop and sessions
  api      model.hpp, cuda_model.hpp, smallcoder.hpp
`--graph` prints the include graph by folder (edges with the number of #include lines).
"""
import collections
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "include"
ORDER = ["base", "tensor", "text", "io", "model", "backend", "generate", "api"]
ROOT_HEADERS = {"error.hpp": "base", "random.hpp": "base", "threads.hpp": "base", "config.hpp": "base",
                "model.hpp": "api", "cuda_model.hpp": "api", "smallcoder.hpp": "api"}
FOLDERS = {"tensor": "tensor", "text": "text", "io": "io", "model": "model", "cpu": "backend",
           "cpu/kernels": "backend", "cuda": "backend", "generate": "generate"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"smallcoder/([^"]+)"', re.M)


def folder_of(name):
    parent = str(pathlib.PurePosixPath(name).parent)
    return name if parent == "." else parent


def layer_of(name):
    parent = str(pathlib.PurePosixPath(name).parent)
    layer = ROOT_HEADERS.get(name) if parent == "." else FOLDERS.get(parent)
    if layer is None:
        sys.exit(f"check_layers: {name} is in no layer: add it to tools/check_layers.py")
    return layer


def main():
    edges = collections.Counter()
    errors = []
    for path in sorted((ROOT / "smallcoder").rglob("*.hpp")):
        name = str(path.relative_to(ROOT / "smallcoder"))
        for included in INCLUDE.findall(path.read_text(encoding="utf-8")):
            if not (ROOT / "smallcoder" / included).is_file():
                errors.append(f"{name} includes {included}, which does not exist")
                continue
            edges[(folder_of(name), folder_of(included))] += 1
            src, dst = layer_of(name), layer_of(included)
            if ORDER.index(dst) > ORDER.index(src):
                errors.append(f"{name} ({src}) includes {included} ({dst}), a layer above it")
            elif src == dst == "backend" and folder_of(name).split("/")[0] != folder_of(included).split("/")[0]:
                errors.append(f"{name} includes {included}: the backends do not include each other")
    if "--graph" in sys.argv:
        for (a, b), n in sorted(edges.items(), key=lambda e: (ORDER.index(layer_of_folder(e[0][0])), e[0])):
            if a != b:
                print(f"{a} -> {b}  ({n})")
    for e in errors:
        print("check_layers:", e)
    return 1 if errors else 0


def layer_of_folder(folder):
    return layer_of(folder) if folder.endswith(".hpp") else FOLDERS[folder]


if __name__ == "__main__":
    sys.exit(main())
