"""Writes the tiny test model: a few KB of ONNX the project generates itself (no licence limits).

    python make_tiny_model.py [OUT_DIR]      (default: ../tests/fixtures/tiny)

Produces `model.onnx`, `manifest.json` (same format as the real model's) and `expected.json`
(onnxruntime's scores for the formula inputs of `test_inputs.py`, so the Rust service can check
that tract computes the same, and for the photo fixtures after Pillow preprocessing). Needs numpy, onnx, onnxruntime and pillow. The weights come from a seeded
generator, so running it again gives the same model.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from test_inputs import FORMULA, INPUTS, describe, make_input

OPSET = 13
IR_VERSION = 8
SIZE = 32
INPUT_NAME = "image"
PHOTOS = Path(__file__).resolve().parent.parent / "tests/fixtures/photos"


def build_model():
    rng = np.random.default_rng(20240611)

    def weight(name, *shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    initializers = [
        weight("conv1.weight", 6, 3, 3, 3, scale=0.4),
        weight("conv1.bias", 6, scale=0.1),
        weight("conv2.weight", 8, 6, 3, 3, scale=0.25),
        weight("conv2.bias", 8, scale=0.1),
        weight("fc.weight", 1, 8, scale=0.8),
        numpy_helper.from_array(np.array([-0.3], dtype=np.float32), "fc.bias"),
    ]
    nodes = [
        helper.make_node("Conv", [INPUT_NAME, "conv1.weight", "conv1.bias"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logit"], transB=1),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_memorability",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        initializers,
    )
    model = helper.make_model(graph, producer_name="forgettable-images", opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "tests/fixtures/tiny"
    out.mkdir(parents=True, exist_ok=True)
    model_bytes = build_model().SerializeToString()
    (out / "model.onnx").write_bytes(model_bytes)

    manifest = {
        "name": "tiny",
        "version": "1",
        "file": "model.onnx",
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "input": {"name": INPUT_NAME, "height": SIZE, "width": SIZE},
        "preprocess": {
            "resize": {"height": 36, "width": 36, "filter": "bilinear"},
            "crop": {"height": SIZE, "width": SIZE},
            "scale": 255.0,
            "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0],
        },
        "output": {"kind": "sigmoid_score"},
        "threshold": 0.5,
        "licence": "Generated test model, no licence restrictions: random seeded weights made by "
        "inference_service/convert/make_tiny_model.py. Its scores mean nothing.",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    import onnxruntime

    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    cases = []
    for name, coefficients in INPUTS:
        x = make_input(coefficients, SIZE, SIZE)
        score = float(session.run(None, {INPUT_NAME: x})[0][0, 0])
        cases.append({**describe(name, coefficients, SIZE, SIZE), "score": score})
    # A batch of all inputs gives the same scores as one at a time (dynamic batch axis).
    batch = np.concatenate([make_input(k, SIZE, SIZE) for _, k in INPUTS])
    batched = session.run(None, {INPUT_NAME: batch})[0][:, 0]
    assert np.max(np.abs(batched - [c["score"] for c in cases])) < 1e-6
    # The photo fixtures through the manifest's preprocessing (Pillow), for end-to-end checks.
    from PIL import Image

    from preprocess_reference import preprocess

    photos = []
    for path in sorted(p for p in PHOTOS.iterdir() if p.suffix in (".png", ".jpg")):
        with Image.open(path) as image:
            x = preprocess(manifest, image)
        score = float(session.run(None, {INPUT_NAME: x})[0][0, 0])
        photos.append({"file": path.name, "score": score})
    expected = {
        "model": "tiny",
        "produced_by": f"onnxruntime {onnxruntime.__version__} (CPU) running model.onnx",
        "formula": FORMULA,
        "tolerance": 1e-5,
        "inputs": cases,
        "photos_note": "Photo fixtures preprocessed as the manifest says with Pillow (preprocess_reference.py); "
        "another resize implementation shifts these slightly.",
        "photos": photos,
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    for case in cases:
        print(f"{case['name']:>18}: {case['score']:.6f}")
    print(f"wrote {out} ({len(model_bytes)} bytes of ONNX)")


if __name__ == "__main__":
    main()
