"""Quicklook plots: rendered to PNG, checked for size and for non-empty content."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import xarray as xr

import romanxr
from romanxr.dq import GroupFlag, PixelFlag
from romanxr.plot import display_limits, percentile_limits, zscale_limits

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

MEAN_TIME = np.array([3.0, 9.0, 15.0, 21.0, 27.0])


def _image(ny=20, nx=24):
    y = np.arange(4, 4 + ny)
    x = np.arange(4, 4 + nx)
    data = np.add.outer(np.arange(ny), np.arange(nx)).astype(np.float32)
    dq = np.zeros((ny, nx), np.uint32)
    dq[2, 3] = PixelFlag.JUMP_DET
    dq[5, 6] = PixelFlag.JUMP_DET | PixelFlag.SATURATED
    dq[7, 8] = PixelFlag.DEAD
    return xr.Dataset({"data": (("y", "x"), data), "dq": (("y", "x"), dq)}, coords={"y": y, "x": x})


def _ramp():
    """A 5-resultant ramp: 2 DN/s everywhere; pixel (y=5, x=6) jumps by 100 DN in resultant 3."""
    ny, nx = 8, 10
    y, x = np.arange(4, 4 + ny), np.arange(4, 4 + nx)
    data = np.broadcast_to(100 + 2.0 * MEAN_TIME[:, None, None], (5, ny, nx)).copy()
    data[3:, 1, 2] += 100.0
    gdq = np.zeros((5, ny, nx), np.uint8)
    gdq[3, 1, 2] = GroupFlag.JUMP_DET
    gdq[4, 0, 0] = GroupFlag.SATURATED
    return xr.Dataset(
        {
            "data": (("resultant", "y", "x"), data.astype(np.float32)),
            "groupdq": (("resultant", "y", "x"), gdq),
            "pixeldq": (("y", "x"), np.zeros((ny, nx), np.uint32)),
        },
        coords={"resultant": np.arange(5), "mean_time": ("resultant", MEAN_TIME), "y": y, "x": x},
    )


def _render(ax, path):
    ax.figure.savefig(path, dpi=50)
    plt.close(ax.figure)
    pixels = mpimg.imread(path)
    return pixels


def _assert_png(pixels, shape):
    assert pixels.shape[:2] == shape
    rgb = pixels[..., :3]
    assert rgb.std() > 0.05  # not a blank canvas
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20


def test_image_renders_with_zscale(tmp_path):
    ax = _image().roman.plot.image()
    vmin, vmax = ax.images[0].get_clim()
    assert vmin < vmax
    assert ax.images[0].get_extent() == [3.5, 27.5, 3.5, 23.5]  # absolute pixel coordinates
    _assert_png(_render(ax, tmp_path / "image.png"), (250, 300))  # 6x5 in at 50 dpi


def test_image_percentile_stretch_limits():
    ax = _image().roman.plot.image(stretch=(0, 100), colorbar=False)
    assert ax.images[0].get_clim() == (0.0, 19.0 + 23.0)
    plt.close(ax.figure)


def test_image_of_a_ramp_shows_a_resultant():
    ax = _ramp().roman.plot.image(resultant=0, colorbar=False)
    assert ax.get_title() == "data, resultant 0"
    np.testing.assert_allclose(ax.images[0].get_array(), 106.0)
    plt.close(ax.figure)


def test_dq_bit_map_counts_flagged_pixels(tmp_path):
    ax = _image().roman.plot.dq(bit="JUMP_DET")
    shown = np.asarray(ax.images[0].get_array())
    assert shown.sum() == 2 and shown[2, 3] == 1 and shown[5, 6] == 1
    assert ax.get_title() == "dq: JUMP_DET (2 pixels)"
    pixels = _render(ax, tmp_path / "dq.png")
    assert pixels.shape[:2] == (250, 300)
    assert pixels[..., :3].std() > 0.05


def test_dq_any_bit_and_flag_objects():
    ds = _image()
    ax = ds.roman.plot.dq()
    assert np.asarray(ax.images[0].get_array()).sum() == 3
    plt.close(ax.figure)
    ax = ds.roman.plot.dq(bit=PixelFlag.DEAD)
    assert np.asarray(ax.images[0].get_array()).sum() == 1
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="unknown DQ flag 'JUMPED'"):
        ds.roman.plot.dq(bit="JUMPED")


def test_ramp_plot_draws_fit_segments_and_marks_the_jump(tmp_path):
    ramp = _ramp()
    fit = xr.Dataset(
        {"data": (("y", "x"), np.full((8, 10), 2.0, np.float32))},
        coords={"y": ramp["y"], "x": ramp["x"]},
    )
    ax = ramp.roman.plot.ramp(5, 6, cal=fit)
    lines = {line.get_label(): line for line in ax.get_lines()}
    jump = lines["jump"]
    np.testing.assert_array_equal(jump.get_xdata(), [21.0])
    fit_lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    assert len(fit_lines) == 2  # one segment before the jump, one after
    before, after = fit_lines
    # the fitted line goes through the points: 100 + 2 t before, 200 + 2 t after
    np.testing.assert_allclose(before.get_ydata(), 100 + 2 * before.get_xdata())
    np.testing.assert_allclose(after.get_ydata(), 200 + 2 * after.get_xdata())
    _assert_png(_render(ax, tmp_path / "ramp.png"), (200, 300))  # 6x4 in at 50 dpi


def test_ramp_plot_shows_flagged_resultants_hollow():
    ax = _ramp().roman.plot.ramp(4, 4)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["resultants", "flagged"]
    plt.close(ax.figure)


def test_ramp_needs_a_ramp():
    with pytest.raises(romanxr.errors.ExposureError, match="no resultant dimension"):
        _image().roman.plot.ramp(5, 6)


def test_limits():
    values = np.array([0.0, 1.0, 2.0, np.nan, 100.0])
    assert percentile_limits(values, 0, 100) == (0.0, 100.0)
    assert display_limits(values, "minmax") == (0.0, 100.0)
    lo, hi = zscale_limits(np.arange(1000.0))
    assert 0 <= lo < hi <= 999
    assert display_limits(np.full(5, np.nan)) == (0.0, 1.0)
    with pytest.raises(ValueError, match="unknown stretch"):
        display_limits(values, "log")


def test_clear_error_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'romanxr\[plot\]'"):
        _image().roman.plot.image()


def _quicklook_inputs():
    """A cal-like image (with one JUMP_DET pixel) and its ramp, for the quicklook figure."""
    ramp = _ramp()
    image = ramp["data"].isel(resultant=-1).rename("data").to_dataset()
    image["data"] = image["data"] / 27.0
    dq = np.zeros(image["data"].shape, np.uint32)
    dq[1, 2] = PixelFlag.JUMP_DET
    image["dq"] = (("y", "x"), dq)
    return image, ramp


def test_quicklook_png_size_and_title_clear_of_colorbar(tmp_path):
    from astropy.table import Table

    from romanxr.plot import quicklook_figure, quicklook_png

    image, ramp = _quicklook_inputs()
    catalog = Table({"x_centroid": [2.0, 5.0], "y_centroid": [1.0, 3.0]})
    path = quicklook_png(image, tmp_path / "q.png", title="a long title: slope (DN/s)", ramp=ramp)
    assert mpimg.imread(path).shape[:2] == (650, 1000)
    fig = quicklook_figure(image, title="a long title: slope (DN/s)", ramp=ramp, catalog=catalog)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    ax_img, colorbar = fig.axes[0], fig.axes[-1]
    assert colorbar.get_label() == "<colorbar>"
    bar = colorbar.get_tightbbox(renderer)
    assert not title.overlaps(bar)
    assert not ax_img.title.get_window_extent(renderer).overlaps(bar)
    # the ramp panel shows the JUMP_DET pixel, the sources are circled on the image
    assert any("JUMP_DET pixel y=5, x=6" == ax.get_title() for ax in fig.axes)
    marked = [line for line in ax_img.lines if line.get_label() == "2 sources"]
    np.testing.assert_array_equal(marked[0].get_xdata(), [6.0, 9.0])
