"""The Dataset contract shared by every romanxr step.

A Roman exposure is an :class:`xarray.Dataset`:

Level 1 / ramp (before ``ramp_fit``)
    dims ``(resultant, y, x)``; ``y`` and ``x`` are *absolute* detector pixel positions in the
    science-frame orientation (0..4095 for a full frame), so a cut-out keeps knowing where it
    sits on the detector and reference files can be aligned to it by coordinate.

    ============== ========================== ============ ============================
    variable       dims                       dtype        when
    ============== ========================== ============ ============================
    data           (resultant, y, x)          uint16/f32   always (float32 after dq_init)
    amp33          (resultant, y, amp33_x)    uint16       always
    resultantdq    (resultant, y, x)          uint8        L1, optional
    reference_read (y, x)                     uint16       L1, optional
    reference_amp33(y, amp33_x)               uint16       L1, optional
    pixeldq        (y, x)                     uint32       after dq_init
    groupdq        (resultant, y, x)          uint8        after dq_init
    ============== ========================== ============ ============================

    Resultant coordinates derived from ``meta.exposure.read_pattern`` and ``frame_time``:
    ``mean_time`` (s), ``n_reads``, ``variance_time`` (s; the ``tau`` of Casertano et al.
    2022, so that ``Var(R_i) = f * tau_i`` for a Poisson rate ``f``), ``first_read``,
    ``last_read``.

Level 2 image (after ``ramp_fit``)
    dims ``(y, x)`` on the 4088x4088 science area (coords 4..4091 for a full frame).

Attributes
    ``attrs["meta"]`` holds the whole Roman metadata tree as nested dicts (so it can be written
    back); ``attrs["step_parameters"]`` holds the parameters each step ran with;
    ``attrs["frame_shape"]`` the ``[ny, nx]`` of the whole frame the pixels belong to (the
    file's array shape, kept by cut-outs; 4096x4096 for a real detector), which tells where
    the 4-pixel reference border is. Read pattern, detector and the like are read from
    ``meta``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from romanxr.errors import ExposureError

__all__ = [
    "BORDER",
    "DETECTOR_SIZE",
    "DIMS",
    "IMAGING_EXPOSURE_TYPES",
    "L2_VARIABLES",
    "RAMP_DIMS",
    "ReadPatternInfo",
    "exposure_type",
    "frame_shape",
    "get_meta",
    "is_imaging",
    "read_pattern_info",
    "record_step",
    "resultant_coords",
    "validate_exposure",
    "validate_read_pattern",
]

RAMP_DIMS = ("resultant", "y", "x")
#: Width of the reference-pixel border on each side of a frame, and a real detector's size.
BORDER = 4
DETECTOR_SIZE = 4096
DIMS = RAMP_DIMS
AMP33_DIM = "amp33_x"
L2_VARIABLES = ("data", "dq", "err", "var_poisson", "var_rnoise", "chisq", "dumo")
#: Imaging exposure types (``meta.exposure.type``): the ones romancal's exposure pipeline
#: flat-fields; spectral, dark and flat exposures stop before the flat.
IMAGING_EXPOSURE_TYPES = ("WFI_IMAGE", "WFI_LOLO", "WFI_WFSC")

#: cal_step keys required in a Level-2 product, in pipeline order first.
CAL_STEP_KEYS = (
    "dq_init",
    "saturation",
    "refpix",
    "dark_decay",
    "wfi18_transient",
    "linearity",
    "ramp_fit",
    "dark",
    "assign_wcs",
    "photom",
    "flat_field",
    "flux",
    "outlier_detection",
    "skymatch",
    "source_catalog",
    "tweakreg",
)


class ReadPatternInfo:
    """Timing constants of a multi-accumulation (MA) table.

    Parameters
    ----------
    read_pattern : sequence of sequence of int
        1-based read numbers averaged into each resultant.
    frame_time : float
        Time between reads (s).

    Attributes
    ----------
    mean_time : ndarray
        ``frame_time * mean(reads)`` per resultant (s).
    n_reads : ndarray
        Number of reads per resultant.
    variance_time : ndarray
        ``frame_time * sum_k (2n - 2k + 1) r_k / n**2`` per resultant (s).
    """

    def __init__(self, read_pattern: Sequence[Sequence[int]], frame_time: float) -> None:
        self.read_pattern = [[int(r) for r in group] for group in read_pattern]
        self.frame_time = float(frame_time)
        n = np.array([len(g) for g in self.read_pattern], dtype=np.int64)
        self.n_reads = n
        self.mean_time = self.frame_time * np.array(
            [np.mean(g) for g in self.read_pattern], dtype=np.float64
        )
        tau = []
        for group in self.read_pattern:
            m = len(group)
            k = np.arange(1, m + 1)
            tau.append(np.sum((2 * m - 2 * k + 1) * np.asarray(group, dtype=np.float64)) / m**2)
        self.variance_time = self.frame_time * np.array(tau, dtype=np.float64)
        self.first_read = np.array([g[0] for g in self.read_pattern], dtype=np.int64)
        self.last_read = np.array([g[-1] for g in self.read_pattern], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.read_pattern)


def validate_read_pattern(
    read_pattern: Any,
    frame_time: Any,
    n_resultants: int | None = None,
    *,
    source: str = "the exposure",
) -> ReadPatternInfo:
    """Check an MA table and return its timing constants.

    Raises
    ------
    ExposureError
        If ``read_pattern`` is missing or empty, a group is empty, read numbers are not strictly
        increasing positive integers, its length differs from ``n_resultants``, or
        ``frame_time`` is not a positive number. The message names ``source`` and the field.
    """
    field = "meta.exposure.read_pattern"
    if read_pattern is None or isinstance(read_pattern, str):
        raise ExposureError(
            f"{source}: {field} is missing; it must be a list of lists of 1-based read numbers, "
            "one list per resultant (e.g. [[1], [2, 3], [4]])"
        )
    try:
        groups = [list(g) for g in read_pattern]
    except TypeError as exc:
        raise ExposureError(
            f"{source}: {field} must be a list of lists of read numbers, got {read_pattern!r}"
        ) from exc
    if len(groups) == 0:
        raise ExposureError(f"{source}: {field} is empty; every resultant needs its read numbers")
    previous = 0
    for i, group in enumerate(groups):
        if len(group) == 0:
            raise ExposureError(f"{source}: {field}[{i}] is empty; each resultant has >= 1 read")
        for r in group:
            if isinstance(r, bool) or not isinstance(r, int | np.integer):
                raise ExposureError(
                    f"{source}: {field}[{i}] contains {r!r}; read numbers must be integers"
                )
            if r <= previous:
                raise ExposureError(
                    f"{source}: {field} read numbers must be positive and strictly increasing, "
                    f"but resultant {i} has read {r} after read {previous}"
                )
            previous = int(r)
    if n_resultants is not None and len(groups) != n_resultants:
        raise ExposureError(
            f"{source}: {field} describes {len(groups)} resultants but the data have "
            f"{n_resultants}; the MA table does not belong to these data"
        )
    try:
        ft = float(frame_time)
    except (TypeError, ValueError) as exc:
        raise ExposureError(
            f"{source}: meta.exposure.frame_time must be a positive number of seconds, "
            f"got {frame_time!r}"
        ) from exc
    if not np.isfinite(ft) or ft <= 0:
        raise ExposureError(
            f"{source}: meta.exposure.frame_time must be a positive number of seconds, got {ft}"
        )
    return ReadPatternInfo(groups, ft)


def resultant_coords(info: ReadPatternInfo) -> dict[str, tuple]:
    """Coordinates along ``resultant`` derived from the MA table."""
    dim = ("resultant",)
    return {
        "resultant": np.arange(len(info), dtype=np.int64),
        "mean_time": (dim, info.mean_time, {"units": "s", "long_name": "resultant mean time"}),
        "n_reads": (dim, info.n_reads, {"long_name": "reads averaged into the resultant"}),
        "variance_time": (
            dim,
            info.variance_time,
            {"units": "s", "long_name": "Poisson variance time (Var = rate * variance_time)"},
        ),
        "first_read": (dim, info.first_read, {"long_name": "first read number (1-based)"}),
        "last_read": (dim, info.last_read, {"long_name": "last read number (1-based)"}),
    }


def frame_shape(ds: xr.Dataset) -> tuple[int, int]:
    """``(ny, nx)`` of the whole frame ``ds``'s pixels belong to (border included).

    From ``attrs["frame_shape"]``, which the reader sets to the file's array shape and cut-outs
    keep. A Dataset built by hand without it is taken as a whole frame when its ``y``/``x``
    coordinates start at 0 (its size is then the frame size), else as a cut-out of a real
    4096x4096 detector frame.
    """
    shape = ds.attrs.get("frame_shape")
    if shape is not None:
        ny, nx = (int(v) for v in shape)
        return ny, nx
    out = []
    for dim in ("y", "x"):
        coord = np.asarray(ds[dim].values) if dim in ds.coords else np.arange(ds.sizes[dim])
        starts_at_zero = coord.size > 0 and int(coord.min()) == 0
        out.append(int(coord.max()) + 1 if starts_at_zero else DETECTOR_SIZE)
    return out[0], out[1]


def get_meta(ds: xr.Dataset) -> dict:
    """Return the Roman metadata tree of ``ds`` (not a copy: do not modify it)."""
    meta = ds.attrs.get("meta")
    if not isinstance(meta, Mapping):
        raise ExposureError(
            "the Dataset has no Roman metadata in attrs['meta']; open files with "
            "romanxr.open_uncal()/open_cal() or build Datasets with romanxr.testing helpers"
        )
    return meta  # type: ignore[return-value]


def read_pattern_info(ds: xr.Dataset) -> ReadPatternInfo:
    """Validated :class:`ReadPatternInfo` of a ramp Dataset (metadata only, no compute)."""
    exposure = get_meta(ds).get("exposure", {})
    n = ds.sizes.get("resultant")
    return validate_read_pattern(
        exposure.get("read_pattern"), exposure.get("frame_time"), n, source=_name(ds)
    )


def exposure_type(ds: xr.Dataset) -> str:
    """``meta.exposure.type`` in upper case (``""`` when the Dataset does not say)."""
    meta = ds.attrs.get("meta") or {}
    return str((meta.get("exposure") or {}).get("type") or "").upper()


def is_imaging(ds: xr.Dataset) -> bool:
    """Whether ``ds`` is an imaging exposure (:data:`IMAGING_EXPOSURE_TYPES`).

    A Dataset without ``meta.exposure.type`` is not taken for one.
    """
    return exposure_type(ds) in IMAGING_EXPOSURE_TYPES


def _name(ds: xr.Dataset) -> str:
    meta = ds.attrs.get("meta") or {}
    return str(meta.get("filename") or ds.encoding.get("source") or "the exposure")


_EXPECTED_DTYPES = {
    "data": (np.uint16, np.float32),
    "amp33": (np.uint16,),
    "resultantdq": (np.uint8,),
    "groupdq": (np.uint8,),
    "pixeldq": (np.uint32,),
}


def validate_exposure(ds: xr.Dataset, *, level: str = "ramp") -> ReadPatternInfo | None:
    """Check the Dataset contract from metadata alone (never computes).

    Parameters
    ----------
    ds : xarray.Dataset
        An exposure.
    level : {"ramp", "image"}
        What kind of Dataset is expected.

    Returns
    -------
    ReadPatternInfo or None
        The MA table timing of a ramp (None for an image).

    Raises
    ------
    ExposureError
        Names the variable or field at fault and what it should be.
    """
    if not isinstance(ds, xr.Dataset):
        raise ExposureError(f"expected an xarray.Dataset, got {type(ds).__name__}")
    name = _name(ds)
    if "data" not in ds:
        raise ExposureError(f"{name}: no 'data' variable")
    if level == "image":
        if ds["data"].dims != ("y", "x"):
            raise ExposureError(
                f"{name}: an image must have data dims ('y', 'x'), got {ds['data'].dims}"
            )
        get_meta(ds)
        return None
    if ds["data"].dims != RAMP_DIMS:
        raise ExposureError(
            f"{name}: 'data' must have dims {RAMP_DIMS}, got {ds['data'].dims}; "
            "use ds.transpose('resultant', 'y', 'x') or rename the dims"
        )
    for var, allowed in _EXPECTED_DTYPES.items():
        if var in ds and ds[var].dtype not in [np.dtype(a) for a in allowed]:
            want = " or ".join(np.dtype(a).name for a in allowed)
            raise ExposureError(f"{name}: '{var}' must be {want}, got {ds[var].dtype}")
    return read_pattern_info(ds)


def record_step(
    ds: xr.Dataset,
    step: str,
    status: str,
    *,
    parameters: Mapping[str, Any] | None = None,
    references: Mapping[str, str] | None = None,
) -> dict:
    """Return new attrs for ``ds`` with a step's provenance recorded.

    ``meta.cal_step[step] = status``; each reference (reftype -> file name) goes to
    ``meta.ref_file``; ``parameters`` go to ``attrs['step_parameters'][step]``. The input's attrs
    are deep-copied, never modified.
    """
    attrs = copy.deepcopy(dict(ds.attrs))
    meta = attrs.setdefault("meta", {})
    meta.setdefault("cal_step", {})[step] = status
    if references:
        ref_file = meta.setdefault("ref_file", {})
        for reftype, path in references.items():
            ref_file[reftype] = str(path)
    if parameters is not None:
        attrs.setdefault("step_parameters", {})[step] = dict(parameters)
    return attrs
