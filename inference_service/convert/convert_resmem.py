"""Converts the ResMem memorability model from its PyPI wheel to ONNX, without torch.

    python convert_resmem.py --wheel resmem-1.1.6-py3-none-any.whl --out data/models/resmem

Writes `model.onnx`, `manifest.json` (the contract with inference_service), `LICENSE` (the
model's licence, from the wheel) and `self_check.json` (onnxruntime against the torch reference
scores of `../tests/fixtures/resmem_golden.json`, formula inputs and photos; the conversion fails when they disagree by more
than the tolerance written there). Needs numpy, onnx and onnxruntime.

The graph below follows `ResMem.forward` of resmem 1.1.6 (`resmem/__init__.py` in the wheel):
an AlexNet-style branch (conv1..conv5, max pools, two local response normalisations, grouped
convolutions) flattened to 9216 features, concatenated with the 1000 logits of a torchvision
ResNet-152 run on the same input, then fc6..fc12 with ReLU and a final sigmoid. Dropout is the
identity at inference. Batch norms use torch's eps of 1e-5 and running statistics.
"""

import argparse
import hashlib
import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from test_inputs import make_input
from torch_checkpoint import load_state_dict

VERSION = "1.1.6"
OPSET = 13
IR_VERSION = 8
INPUT_NAME = "image"
OUTPUT_NAME = "score"
SIZE = 227
# ResNet-152: bottleneck blocks per stage, and the width of each stage's 3x3 convolutions.
RESNET_STAGES = [(3, 64), (8, 128), (36, 256), (3, 512)]
BN_EPS = 1e-5

LICENCE_NOTE = (
    "ResMem (Needell & Bainbridge, 2021) is licensed by The University of Chicago for "
    "non-commercial use only (the ResMem Non-commercial License, in LICENSE beside this model); "
    "commercial use needs permission from the Brain Bridge Lab. The weights come from the PyPI "
    "package resmem 1.1.6 (https://github.com/Brain-Bridge-Lab/resmem) and were converted to ONNX "
    "on this machine; they are not redistributed by this project. Cite: Needell, C. D. and "
    "Bainbridge, W. A., 'Embracing New Techniques in Deep Learning for Predicting Image "
    "Memorability', Proceedings of the Vision Sciences Society, 2021."
)


class GraphBuilder:
    """Collects ONNX nodes and initializers, taking weights from the state dict by name."""

    def __init__(self, state):
        self.state = state
        self.used = set()
        self.nodes = []
        self.initializers = []
        self.counter = 0

    def weight(self, name):
        if name not in self.used:
            self.used.add(name)
            array = np.ascontiguousarray(self.state[name], dtype="<f4")
            self.initializers.append(
                helper.make_tensor(name, TensorProto.FLOAT, array.shape, array.tobytes(), raw=True)
            )
        return name

    def node(self, op, inputs, **attributes):
        self.counter += 1
        output = f"{op.lower()}_{self.counter}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def conv(self, x, prefix, stride=1, padding=0, groups=1, bias=True):
        w = self.state[f"{prefix}.weight"]
        inputs = [x, self.weight(f"{prefix}.weight")] + ([self.weight(f"{prefix}.bias")] if bias else [])
        return self.node(
            "Conv", inputs, kernel_shape=list(w.shape[2:]), strides=[stride, stride], pads=[padding] * 4, group=groups
        )

    def batch_norm(self, x, prefix):
        names = [self.weight(f"{prefix}.{p}") for p in ("weight", "bias", "running_mean", "running_var")]
        self.used.add(f"{prefix}.num_batches_tracked")  # training bookkeeping, not needed
        return self.node("BatchNormalization", [x, *names], epsilon=BN_EPS)

    def relu(self, x):
        return self.node("Relu", [x])

    def max_pool(self, x, kernel, stride, padding=0):
        return self.node("MaxPool", [x], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[padding] * 4)

    def lrn(self, x):
        # torch.nn.LocalResponseNorm(5) defaults: alpha 1e-4, beta 0.75, k 1; same formula as ONNX LRN.
        return self.node("LRN", [x], size=5, alpha=1e-4, beta=0.75, bias=1.0)

    def linear(self, x, prefix):
        return self.node("Gemm", [x, self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")], transB=1)


def bottleneck(g, x, prefix, stride, has_downsample):
    """torchvision's Bottleneck (the stride sits on the 3x3 convolution)."""
    out = g.relu(g.batch_norm(g.conv(x, f"{prefix}.conv1", bias=False), f"{prefix}.bn1"))
    out = g.relu(g.batch_norm(g.conv(out, f"{prefix}.conv2", stride=stride, padding=1, bias=False), f"{prefix}.bn2"))
    out = g.batch_norm(g.conv(out, f"{prefix}.conv3", bias=False), f"{prefix}.bn3")
    identity = x
    if has_downsample:
        identity = g.batch_norm(g.conv(x, f"{prefix}.downsample.0", stride=stride, bias=False), f"{prefix}.downsample.1")
    return g.relu(g.node("Add", [out, identity]))


def resnet152(g, x):
    out = g.relu(g.batch_norm(g.conv(x, "features.conv1", stride=2, padding=3, bias=False), "features.bn1"))
    out = g.max_pool(out, 3, 2, padding=1)
    for stage, (blocks, _width) in enumerate(RESNET_STAGES, start=1):
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            out = bottleneck(g, out, f"features.layer{stage}.{block}", stride, has_downsample=block == 0)
    out = g.node("Flatten", [g.node("GlobalAveragePool", [out])], axis=1)
    return g.linear(out, "features.fc")


def alexnet_branch(g, x):
    out = g.lrn(g.max_pool(g.relu(g.conv(x, "conv1", stride=4)), 3, 2))
    out = g.lrn(g.max_pool(g.relu(g.conv(out, "conv2", padding=2, groups=2)), 3, 2))
    out = g.relu(g.conv(out, "conv3", padding=1, groups=2))
    out = g.relu(g.conv(out, "conv4", padding=1, groups=2))
    out = g.max_pool(g.relu(g.conv(out, "conv5", padding=1, groups=2)), 3, 2)
    return g.node("Flatten", [out], axis=1)  # (batch, 256*6*6 = 9216), as cnv.view(-1, 9216)


def build_model(state):
    g = GraphBuilder(state)
    features = g.node("Concat", [alexnet_branch(g, INPUT_NAME), resnet152(g, INPUT_NAME)], axis=1)
    hidden = features
    for layer in ("fc6", "fc7", "fc8", "fc9", "fc10", "fc11"):
        hidden = g.relu(g.linear(hidden, layer))
    g.nodes.append(helper.make_node("Sigmoid", [g.linear(hidden, "fc12")], [OUTPUT_NAME], name="sigmoid"))

    unused = sorted(set(state) - g.used)
    if unused:
        raise ValueError(f"checkpoint tensors the graph does not use: {unused[:5]} ...")
    graph = helper.make_graph(
        g.nodes,
        "resmem",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1])],
        g.initializers,
    )
    model = helper.make_model(graph, producer_name="forgettable-images", opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.doc_string = f"ResMem {VERSION} memorability model, converted from the PyPI wheel. " + LICENCE_NOTE
    return model


def manifest_for(model_sha256):
    return {
        "name": "resmem",
        "version": VERSION,
        "file": "model.onnx",
        "sha256": model_sha256,
        "input": {"name": INPUT_NAME, "height": SIZE, "width": SIZE},
        "preprocess": {
            "resize": {"height": 256, "width": 256, "filter": "bilinear"},
            "crop": {"height": SIZE, "width": SIZE},
            "scale": 255.0,
            "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0],
        },
        "output": {"kind": "sigmoid_score"},
        "threshold": 0.75,
        "licence": LICENCE_NOTE,
    }


def self_check(model_path, golden_path):
    """Runs the ONNX with onnxruntime on the golden inputs and photos; fails beyond the tolerance."""
    import onnxruntime

    golden = json.loads(golden_path.read_text())
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    results = []
    for case in golden["inputs"]:
        x = make_input(case["coefficients"], case["height"], case["width"])
        score = float(session.run(None, {INPUT_NAME: x})[0][0, 0])
        results.append({"name": case["name"], "torch": case["score"], "onnxruntime": score,
                        "abs_diff": abs(score - case["score"])})
        print(f"    {case['name']:>18}: torch {case['score']:.7f}  onnxruntime {score:.7f}")
    # The photos go through the manifest's preprocessing (Pillow), so this also checks that the
    # manifest describes resmem's own torchvision transform.
    from PIL import Image

    from preprocess_reference import preprocess

    manifest = manifest_for("")
    for photo in golden.get("photos", []):
        with Image.open(golden_path.parent / "photos" / photo["file"]) as image:
            x = preprocess(manifest, image)
        score = float(session.run(None, {INPUT_NAME: x})[0][0, 0])
        results.append({"name": photo["file"], "torch": photo["score"], "onnxruntime": score,
                        "abs_diff": abs(score - photo["score"])})
        print(f"    {photo['file']:>18}: torch {photo['score']:.7f}  onnxruntime {score:.7f}")
    worst = max(r["abs_diff"] for r in results)
    report = {"runtime": f"onnxruntime {onnxruntime.__version__} (CPU)", "reference": golden["produced_by"],
              "tolerance": golden["tolerance"], "max_abs_diff": worst, "inputs": results}
    if worst > golden["tolerance"]:
        raise SystemExit(f"self-check failed: onnxruntime differs from torch by {worst:.3g} "
                         f"(tolerance {golden['tolerance']})")
    return report


def main():
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, required=True, help=f"resmem-{VERSION}-py3-none-any.whl")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--golden", type=Path, default=here.parent / "tests/fixtures/resmem_golden.json")
    parser.add_argument("--skip-self-check", action="store_true", help="write the model without checking it")
    args = parser.parse_args()
    started = time.monotonic()

    print(f"==> reading the weights from {args.wheel.name}")
    with zipfile.ZipFile(args.wheel) as wheel:
        licence = wheel.read(f"resmem-{VERSION}.dist-info/LICENSE").decode("utf-8-sig")
        state = load_state_dict(wheel.read("resmem/model.pt"))
    print(f"    {len(state)} tensors, {sum(v.size for v in state.values()):,} numbers")

    print("==> building the ONNX graph (ResNet-152 + AlexNet-style branch with LRN)")
    model = build_model(state)
    del state
    onnx.checker.check_model(model)
    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / "model.onnx"
    partial = args.out / "model.onnx.partial"
    model_bytes = model.SerializeToString()
    del model
    partial.write_bytes(model_bytes)
    digest = hashlib.sha256(model_bytes).hexdigest()
    print(f"    {len(model_bytes) / 1e6:.1f} MB, sha256 {digest}")
    del model_bytes

    if not args.skip_self_check:
        print("==> self-check: onnxruntime against the torch reference scores")
        report = self_check(partial, args.golden)
        print(f"    max abs diff {report['max_abs_diff']:.3g} (tolerance {report['tolerance']})")
        (args.out / "self_check.json").write_text(json.dumps(report, indent=2) + "\n")

    (args.out / "LICENSE").write_text(licence)
    # The model goes in place before the manifest that names its hash, so a reader never sees a
    # manifest without its model.
    partial.replace(model_path)
    (args.out / "manifest.json").write_text(json.dumps(manifest_for(digest), indent=2) + "\n")
    print(f"==> wrote {args.out} in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
