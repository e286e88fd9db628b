"""Full-frame timing of the Level-2 image steps and of world_coords.

Usage (from the repository root)::

    PYTHONPATH=. python benchmarks/bench_image_steps.py [--workdir DIR] [--chunk ROWS]

Builds a synthetic 4088x4088 image in memory (dask, bands of ``--chunk`` rows), writes full-size
DARK/FLAT/DISTORTION references with roman_datamodels, then times graph construction, the
compute of dark_current -> assign_wcs -> photom-less chain -> flatfield, and the sky
coordinates of every pixel.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import xarray as xr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--chunk", type=int, default=512)
    args = parser.parse_args()
    import roman_datamodels.datamodels as dm
    from astropy.modeling.models import Shift

    from romanxr.steps.assign_wcs import assign_wcs
    from romanxr.steps.dark_current import dark_current
    from romanxr.steps.flatfield import flatfield
    from romanxr.wcs import world_coords

    work = Path(args.workdir or tempfile.mkdtemp(prefix="romanxr-bench-"))
    n = 4088
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    dark = dm.DarkRefModel.create_fake_data(shape=(4096, 4096))
    dark.dark_slope = rng.uniform(0, 0.1, (4096, 4096)).astype(np.float32)
    dark.save(work / "dark.asdf")
    flat = dm.FlatRefModel.create_fake_data(shape=(n, n))
    flat.data = rng.uniform(0.9, 1.1, (n, n)).astype(np.float32)
    flat.err = np.full((n, n), 0.01, np.float32)
    flat.save(work / "flat.asdf")
    dist = dm.DistortionRefModel.create_fake_data()
    dist.coordinate_distortion_transform = Shift(-2044 * 0.11) & Shift(-2044 * 0.11)
    dist.save(work / "distortion.asdf")
    print(f"references written in {time.perf_counter() - t0:.1f} s to {work}")

    chunks = {"y": args.chunk, "x": -1}
    coords = {"y": np.arange(4, 4 + n), "x": np.arange(4, 4 + n)}
    image = xr.Dataset(
        {
            "data": (("y", "x"), rng.uniform(0, 10, (n, n)).astype(np.float32)),
            "dq": (("y", "x"), np.zeros((n, n), np.uint32)),
            "err": (("y", "x"), np.ones((n, n), np.float32)),
            "var_poisson": (("y", "x"), np.ones((n, n), np.float32)),
            "var_rnoise": (("y", "x"), np.ones((n, n), np.float32)),
            "dumo": (("y", "x"), np.zeros((n, n), np.float32)),
        },
        coords=coords,
        attrs={
            "meta": {
                "exposure": {"type": "WFI_IMAGE"},
                "instrument": {"optical_element": "F158", "detector": "WFI01"},
                "wcsinfo": {
                    "v2_ref": -503.0,
                    "v3_ref": -318.0,
                    "ra_ref": 156.0,
                    "dec_ref": 54.2,
                    "roll_ref": 0.15,
                },
                "velocity_aberration": {"scale_factor": 1.00007},
            }
        },
    ).chunk(chunks)

    t0 = time.perf_counter()
    out = dark_current(image, override_dark=work / "dark.asdf")
    out = assign_wcs(out, override_distortion=work / "distortion.asdf")
    out = flatfield(out, override_flat=work / "flat.asdf", include_var_flat=True)
    print(f"graph built in {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    dask.compute(out["data"], out["err"], out["dq"], out["var_flat"])
    print(f"dark + flat computed (4 arrays) in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    sky = world_coords(out)
    ra, dec = dask.compute(sky["ra"], sky["dec"])
    assert np.isfinite(ra).all() and np.isfinite(dec).all()
    print(f"world_coords of {n}x{n} pixels in {time.perf_counter() - t0:.1f} s")
    print("s_region:", out.attrs["meta"]["wcsinfo"]["s_region"])


if __name__ == "__main__":
    main()
