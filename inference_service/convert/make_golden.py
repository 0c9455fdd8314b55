"""Computes the torch reference scores of ResMem: `../tests/fixtures/resmem_golden.json`.

This ran once, by hand; the project never needs torch. To repeat it, in a throwaway virtualenv:

    pip install torch==2.15.0 torchvision==0.29.2 numpy pillow
    pip install --no-deps resmem-1.1.6-py3-none-any.whl
    python make_golden.py [OUT.json]

It runs the original `resmem.ResMem` (its own `__init__.py`, loading the wheel's `model.pt`) in
eval mode on CPU, on the formula inputs of `test_inputs.py` at 227x227 and on the photo fixtures
preprocessed with resmem's own `transformer` (torchvision Resize((256, 256)) with Pillow's
antialiased bilinear filter, CenterCrop(227), ToTensor).
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

import resmem
from test_inputs import FORMULA, INPUTS, describe, make_input

HERE = Path(__file__).resolve().parent
PHOTOS = HERE.parent / "tests/fixtures/photos"


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "tests/fixtures/resmem_golden.json"
    torch.set_num_threads(2)
    model = resmem.ResMem(pretrained=True)
    model.eval()

    cases = []
    with torch.no_grad():
        for name, coefficients in INPUTS:
            x = torch.from_numpy(make_input(coefficients, 227, 227))
            score = float(model(x)[0, 0])
            cases.append({**describe(name, coefficients, 227, 227), "score": score})
            print(f"{name:>18}: {score:.7f}")
        photos = []
        for path in sorted(p for p in PHOTOS.iterdir() if p.suffix in (".png", ".jpg")):
            image = Image.open(path).convert("RGB")
            x = resmem.transformer(image).view(-1, 3, 227, 227)
            score = float(model(x)[0, 0])
            photos.append({"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "score": score})
            print(f"{path.name:>18}: {score:.7f}")

    golden = {
        "model": "resmem 1.1.6",
        "produced_by": (
            f"torch {torch.__version__.split('+')[0]} and torchvision {torchvision.__version__.split('+')[0]} on CPU, "
            "running resmem.ResMem(pretrained=True).eval() from the resmem 1.1.6 wheel "
            "(inference_service/convert/make_golden.py)"
        ),
        "formula": FORMULA,
        "tolerance": 1e-5,
        "tolerance_note": (
            "The converter's self-check requires onnxruntime to agree with these scores within "
            "`tolerance`. Other runtimes sum in other orders; allow them about 1e-4."
        ),
        "inputs": cases,
        "photos_note": (
            "Scores of the photo fixtures after resmem's own preprocessing (Pillow: convert('RGB'), "
            "antialiased bilinear resize to 256x256, centre crop 227 at offset 14, /255). "
            "A different resize implementation shifts these by up to about 1e-2."
        ),
        "photos": photos,
    }
    out.write_text(json.dumps(golden, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
