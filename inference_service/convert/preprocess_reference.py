"""The reference preprocessing of a manifest, with Pillow: what the model's authors did.

    python preprocess_reference.py MODEL_DIR IMAGE OUT.f32

Reads `MODEL_DIR/manifest.json`, turns IMAGE into the model's input tensor and writes it to
OUT.f32 as raw little-endian float32 values, shape (1, 3, crop height, crop width), NCHW.
Tests compare the service's own preprocessing against this. Steps, as the manifest describes:
RGB; resize to `resize` with Pillow's antialiased bilinear filter; centre crop (offset
(resize - crop) // 2); divide by `scale`; subtract `mean` and divide by `std` per channel.
"""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

FILTERS = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST,
           "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


def preprocess(manifest, image):
    """The (1, 3, H, W) float32 input tensor for a Pillow image."""
    p = manifest["preprocess"]
    resize, crop = p["resize"], p["crop"]
    image = image.convert("RGB").resize((resize["width"], resize["height"]), FILTERS[resize["filter"]])
    top = (resize["height"] - crop["height"]) // 2
    left = (resize["width"] - crop["width"]) // 2
    pixels = np.asarray(image, dtype=np.float32)[top : top + crop["height"], left : left + crop["width"]]
    x = pixels / np.float32(p["scale"])
    x = (x - np.asarray(p["mean"], dtype=np.float32)) / np.asarray(p["std"], dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None, ...], dtype=np.float32)


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    model_dir, image_path, out = (Path(a) for a in sys.argv[1:])
    manifest = json.loads((model_dir / "manifest.json").read_text())
    with Image.open(image_path) as image:
        tensor = preprocess(manifest, image)
    out.write_bytes(tensor.astype("<f4").tobytes())


if __name__ == "__main__":
    main()
