"""The focal-plane layout and the 18-detector mosaic quicklook."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from romanxr.errors import InputError
from romanxr.focal_plane import (
    DETECTOR_POSITIONS,
    focal_plane_mosaic,
    fpa_to_v2v3,
    v2v3_reference,
)

pytest.importorskip("matplotlib")


def _cal(name: str, value: float) -> xr.Dataset:
    data = xr.DataArray(np.full((24, 24), value, np.float32), dims=("y", "x"))
    return xr.Dataset({"data": data}, attrs={"meta": {"instrument": {"detector": name}}})


@pytest.fixture(scope="module")
def figure(tmp_path_factory):
    cals = [_cal(name, i) for i, name in enumerate(sorted(DETECTOR_POSITIONS))]
    path = tmp_path_factory.mktemp("mosaic") / "mosaic.png"
    return focal_plane_mosaic(cals, path, title="test"), path


def _tiles(fig):
    return {ax.get_title(): ax.get_position() for ax in fig.axes if ax.images}


def test_eighteen_image_axes_labelled_and_written(figure):
    fig, path = figure
    tiles = _tiles(fig)
    assert sorted(tiles) == [f"WFI{i:02d}" for i in range(1, 19)]
    assert path.stat().st_size > 1000


def test_tiles_sit_in_the_focal_plane_order(figure):
    tiles = _tiles(figure[0])

    def centre(name):
        b = tiles[name]
        return (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2

    assert centre("WFI02")[1] > centre("WFI01")[1]  # 1, 2, 3 go up a column
    assert centre("WFI03")[1] > centre("WFI02")[1]
    assert centre("WFI04")[0] < centre("WFI01")[0] < centre("WFI10")[0] < centre("WFI13")[0]
    assert centre("WFI07")[1] < centre("WFI04")[1] < centre("WFI01")[1]  # the arc of a row


def test_no_two_tiles_overlap(figure):
    boxes = list(_tiles(figure[0]).values())
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0


def test_one_shared_stretch(figure):
    limits = {ax.images[0].get_clim() for ax in figure[0].axes if ax.images}
    assert len(limits) == 1


def test_layout_is_tied_to_v2v3():
    # the WFI centre maps onto itself; WFI01 and WFI10 mirror about the centre column
    np.testing.assert_allclose(fpa_to_v2v3(0.0, 0.0), (1546.3846, -892.7916), atol=1e-3)
    v2a, v3a = v2v3_reference("WFI01")
    v2b, v3b = v2v3_reference(10)
    assert np.hypot(v2a - v2b, v3a - v3b) == pytest.approx(2 * 0.0679 * 3600, rel=0.01)


def test_a_repeated_or_unknown_detector_is_refused():
    with pytest.raises(InputError, match="twice"):
        focal_plane_mosaic([_cal("WFI01", 1), _cal("WFI01", 2)])
    with pytest.raises(InputError, match="WFI19"):
        focal_plane_mosaic({"WFI19": _cal("WFI01", 1)})
