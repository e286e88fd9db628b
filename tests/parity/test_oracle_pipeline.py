"""romancal 1.1.0's whole ExposurePipeline run fully offline on a simulated exposure.

No reference is overridden: every reference comes through stpipe's CRDS look-up, i.e. the real
``crds`` client reading the local cache that :func:`romanxr.testing.crds_cache.
build_local_crds_cache` wrote (pytest-socket keeps the network closed). On the 64x64 frame
romancal's refpix and dark_decay cannot run (they assume 4096x4096) and source_catalog/tweakreg
need real stars and catalogs, so those four are skipped (see ``conftest.py``); the full-frame
run with all ELP steps is ``benchmarks/romancal_oracle.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("romancal")

import roman_datamodels.datamodels as dm

from tests.parity.conftest import ORACLE_SHAPE, ROMANCAL_SKIP_SMALL

pytestmark = pytest.mark.oracle

#: cal_step keys of the steps romancal ran, and the reftypes each looked up in the cache
RAN = {
    "dq_init": ("mask",),
    "saturation": ("saturation",),
    "linearity": ("linearity", "inverselinearity", "integralnonlinearity"),
    "ramp_fit": ("readnoise", "gain"),
    "dark": ("dark",),
    "assign_wcs": ("distortion",),
    "photom": ("photom",),
    "flat_field": ("flat",),
}


@pytest.fixture(scope="module")
def romancal_image(oracle_run):
    with dm.open(oracle_run.romancal_cal) as model:
        yield model


def test_romancal_completes_the_steps_that_ran(romancal_image):
    cal_step = romancal_image.meta.cal_step
    for key in RAN:
        assert cal_step[key] == "COMPLETE", key
    for key in ROMANCAL_SKIP_SMALL:
        assert cal_step[key] == "SKIPPED", key
    # WFI01: the WFI18 transient correction does not apply
    assert cal_step["wfi18_transient"] == "N/A"
    ny, nx = ORACLE_SHAPE
    assert romancal_image.data.shape == (ny - 8, nx - 8)


def test_references_came_from_the_local_cache(romancal_image, oracle_run):
    ref_file = romancal_image.meta.ref_file
    cache = oracle_run.cache
    assert ref_file.crds.context == cache.context == "roman_9000.pmap"
    in_cache = {p.name for paths in cache.references.values() for p in paths}
    for reftypes in RAN.values():
        for reftype in reftypes:
            name = ref_file[reftype]
            # stpipe records a CRDS-resolved file as crds://<name>
            assert name == f"crds://{oracle_run.references[reftype].name}", reftype
            assert name.removeprefix("crds://") in in_cache
    # skipped steps looked nothing up
    assert ref_file.refpix == "?" and ref_file.darkdecaysignal == "?"


def test_romancal_slope_recovers_the_simulated_rate(romancal_image, oracle_run):
    truth = oracle_run.truth
    data = np.asarray(romancal_image.data)
    good = (np.asarray(romancal_image.dq) == 0) & np.isfinite(data)
    assert good.sum() > 0.8 * data.size
    # dark-subtracted and flat-fielded: the scene rate over the response
    ratio = data[good] / truth.scene_rate[good]
    assert abs(np.median(ratio) - 1) < 0.01
    # every simulated cosmic ray is flagged JUMP_DET (4) by romancal's likelihood fit
    flagged = np.asarray(romancal_image.dq) & 4
    assert all(
        flagged[y - 4, x - 4] for y, x in zip(truth.jumps["y"], truth.jumps["x"], strict=True)
    )
