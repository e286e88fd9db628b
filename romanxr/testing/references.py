"""Write a full set of Roman reference files describing a :class:`DetectorModel`.

:func:`make_reference_set` writes one valid roman_datamodels reference file per reftype the
Exposure Level Pipeline looks up (mask, saturation, refpix, darkdecaysignal, linearity,
inverselinearity, integralnonlinearity, readnoise, gain, dark, distortion, photom, flat) as
``roman_wfi_<reftype>_<detector>.asdf``. The instrument/exposure selectors match a simulated
exposure of the same detector and optical element, and every ``useafter`` (2020-01-01) lies
before :data:`~romanxr.testing.exposure_meta.EXPOSURE_START`.

The result is a plain reftype -> path mapping (:class:`ReferenceSet`) that can be passed to
romanxr's ``ReferenceResolver(overrides=...)`` or, via :meth:`ReferenceSet.romancal_steps`, to
romancal's ``ExposurePipeline`` as ``override_<reftype>`` step options.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from romanxr.testing.detector import DETECTORS, DetectorModel
from romanxr.testing.exposure_meta import aperture_reference

__all__ = [
    "OPTICAL_ELEMENTS",
    "REFERENCE_USEAFTER",
    "REFTYPES",
    "ROMANCAL_STEP_REFTYPES",
    "ReferenceSet",
    "make_reference_set",
    "reference_file_name",
    "refpix_coefficients",
]

#: Every reftype written, in pipeline order.
REFTYPES = (
    "mask",
    "saturation",
    "refpix",
    "darkdecaysignal",
    "linearity",
    "inverselinearity",
    "integralnonlinearity",
    "readnoise",
    "gain",
    "dark",
    "distortion",
    "photom",
    "flat",
)
#: romancal ExposurePipeline step name -> the reftypes it looks up.
ROMANCAL_STEP_REFTYPES = {
    "dq_init": ("mask",),
    "saturation": ("saturation",),
    "refpix": ("refpix",),
    "dark_decay": ("darkdecaysignal",),
    "linearity": ("linearity", "inverselinearity", "integralnonlinearity"),
    "rampfit": ("readnoise", "gain"),
    "dark_current": ("dark",),
    "assign_wcs": ("distortion",),
    "photom": ("photom",),
    "flatfield": ("flat",),
}
#: Imaging filters, then the spectral and non-science elements of the photom table.
OPTICAL_ELEMENTS = ("F062", "F087", "F106", "F129", "F146", "F158", "F184", "F213")
_SPECTRAL = ("GRISM", "GRISM_0", "PRISM")
_NON_SCIENCE = ("DARK", "NOT_CONFIGURED")
#: Start of validity of every reference file written here.
REFERENCE_USEAFTER = "2020-01-01T00:00:00.000"
#: Plate scale of the distortion model (arcsec per pixel) and its rotation (deg).
PLATE_SCALE = 0.11
DISTORTION_ROTATION = 0.5


def reference_file_name(reftype: str, detector: str) -> str:
    """``roman_wfi_<reftype>_<detector>.asdf`` (lower case)."""
    return f"roman_wfi_{reftype.lower()}_{detector.lower()}.asdf"


@dataclass
class ReferenceSet(Mapping):
    """Reference files of one detector: a read-only mapping reftype -> path.

    Attributes
    ----------
    paths : dict
        reftype -> :class:`pathlib.Path`.
    detector : DetectorModel
        The model the files describe.
    optical_element : str
        Element the flat/dark/distortion are selected for.
    exposure_type : str
        Exposure type the dark/readnoise are selected for.
    """

    paths: dict[str, Path]
    detector: DetectorModel
    optical_element: str
    exposure_type: str = "WFI_IMAGE"
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, reftype: str) -> Path:
        return self.paths[reftype]

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def overrides(self) -> dict[str, str]:
        """reftype -> path string, for ``ReferenceResolver(overrides=...)``."""
        return {k: str(v) for k, v in self.paths.items()}

    def romancal_steps(self, *, skip: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
        """``steps=`` argument for romancal's ExposurePipeline with every reference overridden.

        Parameters
        ----------
        skip : tuple of str
            romancal step names to skip (e.g. ``("refpix", "dark_decay")`` for frames smaller
            than 4096x4096, ``"source_catalog"``, ``"tweakreg"``).
        """
        steps: dict[str, dict[str, Any]] = {}
        for step, reftypes in ROMANCAL_STEP_REFTYPES.items():
            steps[step] = {
                f"override_{reftype}": str(self.paths[reftype])
                for reftype in reftypes
                if reftype in self.paths
            }
        for step in skip:
            steps.setdefault(step, {})["skip"] = True
        return steps


def refpix_coefficients(ny: int, *, n_channels: int = 32) -> dict[str, np.ndarray]:
    """REFPIX ``gamma``/``zeta``/``alpha`` that remove the simulator's slow common-mode drift.

    The left/right reference-column average low-passed below ``ny / 8`` cycles per frame with
    a cosine taper to ``ny / 4`` (far from the first alias at ``ny``, wide enough for a drift of
    a few cycles per frame, rejecting most reference-pixel read noise); ``alpha = 0``. The
    derivation is in :func:`romanxr.kernels.refpix.refpix_reference_coefficients`.

    Returns
    -------
    dict
        ``gamma``, ``zeta``, ``alpha``: complex128 ``(n_channels, ny * 140 // 2 + 1)``.
    """
    from romanxr.kernels.refpix import refpix_reference_coefficients

    gamma, zeta, alpha = refpix_reference_coefficients(
        ny, n_channels=n_channels, cutoff=1 / 8, taper_to=1 / 4
    )
    return {"gamma": gamma, "zeta": zeta, "alpha": alpha}


def _phot_table(pixel_area_sr: float) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    centres = {"F062": 0.62, "F087": 0.87, "F106": 1.06, "F129": 1.29, "F146": 1.46}
    centres |= {"F158": 1.58, "F184": 1.84, "F213": 2.13}
    for i, element in enumerate(OPTICAL_ELEMENTS):
        wave = np.linspace(centres[element] * 0.85, centres[element] * 1.15, 16, dtype=np.float32)
        table[element] = {
            "photmjsr": 0.30 + 0.02 * i,
            "uncertainty": 0.01,
            "pixelareasr": pixel_area_sr,
            "collecting_area": 3.6,
            "wavelength": wave,
            "effective_area": np.full(16, 2.5, dtype=np.float32),
        }
    for element in _SPECTRAL:
        table[element] = {
            "photmjsr": None,
            "uncertainty": None,
            "pixelareasr": None,
            "collecting_area": 3.6,
            "wavelength": np.linspace(0.8, 1.9, 16, dtype=np.float32),
            "effective_area": np.full(16, 1.5, dtype=np.float32),
        }
    for element in _NON_SCIENCE:
        table[element] = {
            k: None
            for k in (
                "photmjsr",
                "uncertainty",
                "pixelareasr",
                "collecting_area",
                "wavelength",
                "effective_area",
            )
        }
    return table


def _distortion(det: DetectorModel):
    """Science-frame pixel (x, y) of the L2 image -> (V2, V3) arcsec.

    The detector's place and pixel axes in the WFI focal plane (:mod:`romanxr.focal_plane`),
    turned by :data:`DISTORTION_ROTATION` so that the model is not axis-aligned.
    """
    from astropy.modeling import models

    from romanxr.focal_plane import pixel_axes

    sy, sx = det.science_shape
    v2_ref, v3_ref = aperture_reference(det.detector)
    matrix = pixel_axes(det.detector, DISTORTION_ROTATION)
    model = (models.Shift(-(sx - 1) / 2.0) & models.Shift(-(sy - 1) / 2.0)) | (
        models.AffineTransformation2D(matrix=matrix, translation=[v2_ref, v3_ref])
    )
    model.inputs = ("x", "y")
    model.outputs = ("v2", "v3")
    return model


def make_reference_set(
    directory: str | os.PathLike,
    detector_model: DetectorModel,
    *,
    optical_element: str = "F158",
    exposure_type: str = "WFI_IMAGE",
    reftypes: tuple[str, ...] = REFTYPES,
) -> ReferenceSet:
    """Write reference files describing ``detector_model`` into ``directory``.

    Parameters
    ----------
    directory : path-like
        Created if needed.
    detector_model : DetectorModel
        The detector (see :func:`romanxr.testing.make_detector`).
    optical_element : str
        Element for the flat, dark and distortion selectors.
    exposure_type : str
        Exposure type for the dark and read-noise selectors.
    reftypes : tuple of str
        Which files to write (default all of :data:`REFTYPES`).

    Returns
    -------
    ReferenceSet
        reftype -> path.
    """
    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()
    from astropy.time import Time

    det = detector_model
    unknown = set(reftypes) - set(REFTYPES)
    if unknown:
        raise ValueError(f"unknown reftypes {sorted(unknown)}; choose from {REFTYPES}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ny, nx = det.shape
    useafter = Time(REFERENCE_USEAFTER, format="isot", scale="utc")

    def common(model: Any, reftype: str, description: str) -> None:
        meta = model.meta
        meta.pedigree = "DUMMY"
        meta.description = f"romanxr simulation: {description}"
        meta.author = "romanxr.testing"
        meta.origin = "romanxr"
        meta.useafter = useafter
        meta.telescope = "ROMAN"
        meta.instrument.name = "WFI"
        meta.instrument.detector = det.detector
        if "optical_element" in meta.instrument:
            meta.instrument.optical_element = optical_element
        if "exposure" in meta:
            meta.exposure.type = exposure_type
            meta.exposure.p_exptype = f"{exposure_type}|"

    def build(reftype: str) -> Any:
        if reftype == "mask":
            model = dm.MaskRefModel.create_fake_data(shape=(ny, nx))
            model.dq = det.mask.copy()
            common(model, reftype, "bad pixel mask (REFERENCE_PIXEL border, DEAD, HOT)")
        elif reftype == "saturation":
            model = dm.SaturationRefModel.create_fake_data(shape=(ny, nx))
            model.data = det.saturation.astype(np.float32)
            dq = np.zeros((ny, nx), dtype=np.uint32)
            dq[np.isnan(det.saturation)] = 1 << 21  # NO_SAT_CHECK
            model.dq = dq
            common(model, reftype, "saturation thresholds (observed DN)")
        elif reftype == "refpix":
            model = dm.RefpixRefModel.create_fake_data(shape=(2, 2))
            for key, value in refpix_coefficients(ny, n_channels=max(1, nx // 128)).items():
                setattr(model, key, value)
            common(model, reftype, "low-pass left/right average removing common-mode drift")
        elif reftype == "darkdecaysignal":
            model = dm.DarkdecaysignalRefModel.create_fake_data()
            table = {name: {"amplitude": 0.4, "time_constant": 23.0} for name in DETECTORS}
            table[det.detector] = {
                "amplitude": float(det.dark_decay_amplitude),
                "time_constant": float(det.dark_decay_time_constant),
            }
            model.decay_table = table
            common(model, reftype, "dark decay amplitude and time constant")
        elif reftype == "linearity":
            model = dm.LinearityRefModel.create_fake_data(shape=(2, 2, 2))
            model.coeffs = det.linearity_coeffs.astype(np.float32)
            model.dq = det.linearity_dq.copy()
            common(model, reftype, "observed -> linear polynomial")
        elif reftype == "inverselinearity":
            model = dm.InverselinearityRefModel.create_fake_data(shape=(2, 2, 2))
            model.coeffs = det.inverse_linearity_coeffs.astype(np.float32)
            model.dq = np.zeros((ny, nx), dtype=np.uint32)
            common(model, reftype, "linear -> observed polynomial used by the simulator")
        elif reftype == "integralnonlinearity":
            model = dm.IntegralnonlinearityRefModel.create_fake_data()
            model.value = det.inl_value.astype(np.uint16)
            model.inl_table = {
                f"science_channel_{k + 1:02d}": {
                    "instrument_channel": k,
                    "correction": det.inl_correction[k].astype(np.float64),
                }
                for k in range(32)
            }
            model.meta.n_channels = 32
            model.meta.n_pixels_per_channel = 128
            common(model, reftype, "ADC integral non-linearity per science channel")
        elif reftype == "readnoise":
            model = dm.ReadnoiseRefModel.create_fake_data(shape=(ny, nx))
            model.data = det.read_noise.astype(np.float32)
            common(model, reftype, "noise of a single read (DN)")
        elif reftype == "gain":
            model = dm.GainRefModel.create_fake_data(shape=(ny, nx))
            model.data = det.gain.astype(np.float32)
            common(model, reftype, "gain (electrons/DN)")
        elif reftype == "dark":
            model = dm.DarkRefModel.create_fake_data(shape=(ny, nx))
            model.dark_slope = det.dark_rate.astype(np.float32)
            model.dark_slope_error = det.dark_rate_error.astype(np.float32)
            dq = np.zeros((ny, nx), dtype=np.uint32)
            dq[det.hot] = 1 << 11  # HOT
            model.dq = dq
            common(model, reftype, "dark current rate (DN/s)")
        elif reftype == "distortion":
            model = dm.DistortionRefModel.create_fake_data()
            model.coordinate_distortion_transform = _distortion(det)
            model.meta.input_units = "pixel"
            model.meta.output_units = "arcsec"
            common(model, reftype, "pixel -> V2/V3 (0.11 arcsec/pixel, 0.5 deg rotation)")
        elif reftype == "photom":
            model = dm.WfiImgPhotomRefModel.create_fake_data()
            area = (PLATE_SCALE / 206264.80624709636) ** 2
            model.phot_table = _phot_table(area)
            common(model, reftype, "photometric conversion per optical element")
        elif reftype == "flat":
            sy, sx = det.science_shape
            model = dm.FlatRefModel.create_fake_data(shape=(sy, sx))
            model.data = det.flat.astype(np.float32)
            model.err = det.flat_error.astype(np.float32)
            dq = np.zeros((sy, sx), dtype=np.uint32)
            bad = ~np.isfinite(det.flat) | (det.flat == 0)
            dq[bad] = 1 << 18  # NO_FLAT_FIELD
            model.dq = dq
            common(model, reftype, "science-area flat field")
        else:  # pragma: no cover - guarded above
            raise ValueError(reftype)
        return model

    paths: dict[str, Path] = {}
    for reftype in reftypes:
        model = build(reftype)
        path = directory / reference_file_name(reftype, det.detector)
        model.save(path)
        paths[reftype] = path
    return ReferenceSet(
        paths=paths,
        detector=det,
        optical_element=optical_element,
        exposure_type=exposure_type,
    )
