"""Deterministic model inputs that Rust can rebuild exactly, without any image library.

Every input is one formula over the channel c, row y and column x (0-based integers):

    value(c, y, x) = ((k0 + kc*c + ky*y + kx*x + kxy*x*y) mod 256) / 255

The integer part is exact; the division is one IEEE-754 single-precision division, so
`(n as f32) / 255.0` in Rust gives the same bits as numpy's float32 division here. The tensor is
NCHW with N = 1.
"""

import numpy as np

FORMULA = "((k0 + kc*c + ky*y + kx*x + kxy*x*y) mod 256) / 255, in f32, NCHW, N = 1"

# name -> coefficients; the first three are uniform images (grey 128/255, black, white).
INPUTS = [
    ("grey_128", dict(k0=128, kc=0, ky=0, kx=0, kxy=0)),
    ("black", dict(k0=0, kc=0, ky=0, kx=0, kxy=0)),
    ("white", dict(k0=255, kc=0, ky=0, kx=0, kxy=0)),
    ("diagonal_stripes", dict(k0=0, kc=29, ky=7, kx=13, kxy=0)),
    ("soft_gradient", dict(k0=16, kc=64, ky=1, kx=1, kxy=0)),
    ("moire", dict(k0=0, kc=85, ky=0, kx=0, kxy=1)),
]


def make_input(coefficients, height, width):
    """The (1, 3, height, width) float32 tensor for one set of coefficients."""
    c, y, x = np.meshgrid(np.arange(3), np.arange(height), np.arange(width), indexing="ij")
    k = coefficients
    n = (k["k0"] + k["kc"] * c + k["ky"] * y + k["kx"] * x + k["kxy"] * x * y) % 256
    return (n.astype(np.float32) / np.float32(255.0))[None, ...]


def describe(name, coefficients, height, width):
    """The JSON description of one input (everything needed to rebuild it)."""
    return {"name": name, "height": height, "width": width, "coefficients": dict(coefficients)}
