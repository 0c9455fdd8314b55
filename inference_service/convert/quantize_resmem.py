"""Quantizes the converted ResMem to int8 and scores it against fp32 on held-out photographs.

    python quantize_resmem.py --fp32 data/models/resmem --out data/models/resmem-int8 \
        --photo-wheels scikit_image-....whl matplotlib-....whl scikit_learn-....whl

Static quantization with onnxruntime in the QDQ format, after folding the batch norms into the
convolutions: weights int8 per output channel, activations uint8 per tensor with ranges from the
99.999th percentile of their values on the calibration photographs of `photos.py`. Only
convolutions and pools are quantized, and not all of them (see DEFAULT_OP_TYPES and DEFAULT_FLOAT_PARTS).

Writes into `--out`, without touching a model already there:
- `model.onnx.partial` and `manifest.json.partial` (the fp32 manifest with `precision: int8`,
  the int8 file's hash and the fp32 source's hash);
- `accuracy_gate.json`: the fp32 and int8 scores of every evaluation view, the manifest's label
  threshold and the recipe. `cargo xtask model --int8` computes the gate from it (its thresholds
  are in `xtask/src/model/gate.rs`), installs the two files when it passes and deletes them when
  it does not.
Needs numpy, onnx, onnxruntime and pillow (requirements.txt).
"""

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import onnx
import onnxruntime
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

import photos
from preprocess_reference import preprocess

# Quantized operators: the convolutions (with the ReLUs they absorb) and the pools. The residual
# additions, the concatenation of the two branches and the fc6..fc12 head stay in float.
DEFAULT_OP_TYPES = "Conv,MaxPool,GlobalAveragePool"
# ResNet-152 parts whose convolutions stay in float by default: the stem and the stages where
# int8 hurt the scores most for the least time saved (stage 3, 36 of the 50 blocks and most of
# the arithmetic, is quantized). Found by trying, see docs/inference.md.
DEFAULT_FLOAT_PARTS = "conv1,layer1,layer2,layer4"
DEFAULT_PERCENTILE = 99.999


def recipe(model, op_types, float_parts, percentile):
    """The quantization settings, with the convolutions they keep in float."""
    parts = [p for p in float_parts.split(",") if p]
    exclude = [
        n.name
        for n in model.graph.node
        if n.op_type == "Conv" and any(f"features.{p}." in n.input[1] for p in parts)
    ]
    return {
        "format": "QDQ",
        "weights": "int8, symmetric, per output channel",
        "activations": "uint8, asymmetric, per tensor",
        "reduce_range": False,
        "calibration": f"percentile {percentile} of the activations' histograms",
        "quantized_operators": op_types,
        "resnet_parts_in_float": parts,
        "convolutions_in_float": len(exclude),
        "convolutions_quantized": sum(1 for n in model.graph.node if n.op_type == "Conv") - len(exclude),
        "nodes_kept_in_float": exclude,
    }


class Views(CalibrationDataReader):
    def __init__(self, input_name, tensors):
        self.items = iter([{input_name: t} for t in tensors])

    def get_next(self):
        return next(self.items, None)


def tensors_of(manifest, views):
    return [preprocess(manifest, picture) for _, _, picture in views]


def scores(model_path, input_name, tensors):
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return [float(session.run(None, {input_name: t})[0][0, 0]) for t in tensors]


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fp32", type=Path, required=True, help="folder of the converted fp32 ResMem")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--photo-wheels", type=Path, nargs="+", required=True, help="the wheels of photos.txt")
    parser.add_argument("--float-parts", default=DEFAULT_FLOAT_PARTS,
                        help="comma-separated ResNet parts (conv1, layer1..layer4) whose convolutions stay in float")
    parser.add_argument("--quantize-ops", default=DEFAULT_OP_TYPES,
                        help="comma-separated ONNX operator types to quantize")
    parser.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                        help="the activations' calibration percentile")
    parser.add_argument("--calibration-cache", type=Path, help="reuse (or save) the calibrated ranges")
    args = parser.parse_args()
    started = time.monotonic()

    manifest = json.loads((args.fp32 / "manifest.json").read_text())
    fp32_path = args.fp32 / manifest["file"]
    input_name = manifest["input"]["name"]
    if manifest.get("precision", "fp32") != "fp32":
        raise SystemExit(f"{args.fp32} does not hold an fp32 model")
    fp32_sha256 = sha256_of(fp32_path)
    if fp32_sha256 != manifest["sha256"]:
        raise SystemExit(f"{fp32_path} does not match its manifest's SHA-256")

    calibration = photos.load(args.photo_wheels, photos.CALIBRATION)
    evaluation = photos.load(args.photo_wheels, photos.EVALUATION)
    print(f"==> {len(calibration)} calibration views of {len(photos.CALIBRATION)} photographs, "
          f"{len(evaluation)} evaluation views of {len(photos.EVALUATION)} others")

    args.out.mkdir(parents=True, exist_ok=True)
    partial = args.out / "model.onnx.partial"
    # Batch norms folded into their convolutions first: quantizing a convolution's output before
    # its batch norm would give every channel the same scale although the batch norm later
    # stretches each one differently.
    prepared = args.out / "model.prepared.onnx.partial"
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    model = onnx.load(str(prepared))
    op_types = [op for op in args.quantize_ops.split(",") if op]
    settings = recipe(model, op_types, args.float_parts, args.percentile)
    del model
    print(f"==> quantizing (QDQ, per-channel int8 weights, uint8 activations, percentile {args.percentile}; "
          f"{settings['convolutions_quantized']} convolutions in int8, {settings['convolutions_in_float']} in float)")
    try:
        with tempfile.TemporaryDirectory() as scratch:
            # The calibrated ranges are cached only for --calibration-cache (trying other settings).
            quantize_static(
                str(prepared),
                str(partial),
                Views(input_name, tensors_of(manifest, calibration)),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=settings["reduce_range"],
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=op_types,
                nodes_to_exclude=settings["nodes_kept_in_float"],
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": args.percentile},
                calibration_cache_path=args.calibration_cache or Path(scratch) / "ranges.json",
            )
    finally:
        prepared.unlink(missing_ok=True)
    int8_sha256 = sha256_of(partial)
    print(f"    {partial.stat().st_size / 1e6:.1f} MB (fp32: {fp32_path.stat().st_size / 1e6:.1f} MB)")

    print("==> scoring the evaluation views with fp32 and int8 (onnxruntime)")
    evaluation_tensors = tensors_of(manifest, evaluation)
    fp32_scores = scores(fp32_path, input_name, evaluation_tensors)
    int8_scores = scores(partial, input_name, evaluation_tensors)
    images = [
        {"photograph": name, "view": view, "fp32": a, "int8": b}
        for (name, view, _), a, b in zip(evaluation, fp32_scores, int8_scores)
    ]
    gate = {
        "runtime": f"onnxruntime {onnxruntime.__version__} (CPU)",
        "threshold": manifest["threshold"],
        "calibration_photographs": [name for name, _, _ in photos.CALIBRATION],
        "recipe": settings,
        "images": images,
    }
    (args.out / "accuracy_gate.json").write_text(json.dumps(gate, indent=2) + "\n")

    int8_manifest = dict(manifest)
    int8_manifest.update(
        name=f"{manifest['name']}-int8",
        sha256=int8_sha256,
        precision="int8",
        source_sha256=fp32_sha256,
    )
    (args.out / "manifest.json.partial").write_text(json.dumps(int8_manifest, indent=2) + "\n")
    for extra in ("LICENSE",):
        if (args.fp32 / extra).exists():
            shutil.copyfile(args.fp32 / extra, args.out / extra)
    shutil.copyfile(Path(__file__).resolve().parent / "ATTRIBUTION.md", args.out / "ATTRIBUTION.md")
    print(f"==> scored {len(images)} views in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
