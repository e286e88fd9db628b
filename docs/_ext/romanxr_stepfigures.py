"""Figures of the step pages: what each step does to a small simulated exposure.

At build time one 256x256 exposure is simulated with its own reference files
(:mod:`romanxr.testing`), and the steps are chained by hand in the pipeline's order, each on
the previous step's computed output. For every step a PNG compares its input with its output:

* ramp steps (``dq_init`` ... ``jump``): the last resultant after the step, what the step
  changed in the pixel values (or, when it changes none, the pixels it flagged), and the ramp
  of the pixel it changed most, before and after, with its newly flagged resultants marked;
* ``ramp_fit``: the fitted slope, its DQ and the ramp of a pixel with a detected jump;
* image steps: the image after the step, the change in value (or a note when only metadata
  changed) and the pixels given new DQ flags; ``source_catalog`` and ``tweakreg`` circle the
  catalog's sources.

Every caption is worded from the numbers of the figure, not written by hand.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

SIZE = 256
SEED = 2026


def chain(folder: Path) -> list[tuple[Any, Any, Any]]:
    """(spec, input, output) for every step, each computed, on one simulated exposure."""
    import romanxr
    from romanxr.refs import ReferenceResolver
    from romanxr.registry import STEPS
    from romanxr.testing import make_detector, make_reference_set, simulate_exposure
    from romanxr.testing.catalog_refs import (
        add_catalog_references,
        truth_catalog,
        write_reference_catalog,
    )

    detector = make_detector((SIZE, SIZE), seed=SEED)
    refs = add_catalog_references(make_reference_set(folder / "references", detector))
    sim = simulate_exposure(detector, seed=SEED, path=folder)
    resolver = ReferenceResolver(overrides=refs.overrides())
    ds = romanxr.open_uncal(sim.path).compute()
    done = []
    for spec in STEPS:
        parameters = {}
        if spec.name == "tweakreg":  # the simulated stars, 0.2" off, as its reference catalogue
            truth = truth_catalog(sim.truth.sources, ds.attrs["meta"]["wcs"], origin=(4, 4))
            refcat = write_reference_catalog(truth, folder / "refcat.ecsv", shift_arcsec=(0.2, 0))
            parameters = {"abs_refcat": str(refcat)}
        out = spec.apply(ds, parameters, resolver).compute()
        done.append((spec, ds, out))
        ds = out
    return done


def _frame(ds: Any) -> np.ndarray:
    data = ds["data"]
    if "resultant" in data.dims:
        data = data.isel(resultant=-1)
    return np.asarray(data.values, dtype=np.float64)


def _flags(ds: Any) -> np.ndarray:
    """Every DQ bit of each pixel (``dq``, or ``pixeldq`` with ``groupdq`` over resultants)."""
    if "dq" in ds:
        return np.asarray(ds["dq"].values).astype(np.int64)
    flags = np.zeros(ds["data"].shape[-2:], np.int64)
    if "pixeldq" in ds:
        flags |= np.asarray(ds["pixeldq"].values).astype(np.int64)
    if "groupdq" in ds:
        flags |= np.bitwise_or.reduce(np.asarray(ds["groupdq"].values).astype(np.int64), axis=0)
    return flags


def _groupdq(ds: Any) -> np.ndarray:
    if "groupdq" in ds:
        return np.asarray(ds["groupdq"].values).astype(np.int64)
    return np.zeros(ds["data"].shape, np.int64)  # the uncal file has none yet


def _show(ax: Any, values: np.ndarray, title: str, **kwargs: Any) -> Any:
    from romanxr.plot import zscale_limits

    if "vmin" not in kwargs:
        kwargs["vmin"], kwargs["vmax"] = zscale_limits(values)
    shown = ax.imshow(values, origin="lower", cmap=kwargs.pop("cmap", "gray"), **kwargs)
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    return shown


def _note(ax: Any, text: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)


def _change_panel(fig: Any, ax: Any, before: Any, after: Any) -> tuple[np.ndarray | None, str]:
    """What the step changed in the values; None (and a note) when it changed none."""
    same_shape = "data" in before and before["data"].shape == after["data"].shape
    if not same_shape:
        return None, "new product"
    change = _frame(after) - _frame(before)
    finite = np.isfinite(change)
    if not finite.any() or np.nanmax(np.abs(change)) == 0:
        changed = sorted(set(after.attrs.get("meta", {})) - set(before.attrs.get("meta", {})))
        note = "no pixel value changed"
        if changed:
            note += "\nmetadata added: " + ", ".join(changed)
        return None, note
    limit = float(np.nanpercentile(np.abs(change[finite]), 99.5)) or 1.0
    shown = _show(ax, change, "change (after - before)", cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(shown, ax=ax, shrink=0.8)
    n = int((finite & (change != 0)).sum())
    return change, f"{n} pixels changed value (median change {np.nanmedian(change):.3g})"


def _flag_panel(fig: Any, ax: Any, before: Any, after: Any) -> str:
    new = _flags(after) & ~_flags(before)
    n = int((new != 0).sum())
    if n == 0:
        _note(ax, "no new DQ flag")
        return "no new DQ flag"
    from romanxr.dq import PixelFlag

    bits = np.bitwise_or.reduce(new[new != 0])
    names = [f.name for f in PixelFlag if f.value and bits & f.value]
    _show(ax, (new != 0).astype(float), f"new DQ flags ({n} pixels)", vmin=0, vmax=1)
    return f"{n} pixels newly flagged ({', '.join(names[:4])}{'...' if len(names) > 4 else ''})"


def _ramp_panel(ax: Any, before: Any, after: Any, change: np.ndarray | None) -> str:
    """The ramp of the pixel the step changed (or flagged) most, before and after."""
    new_group = _groupdq(after) & ~_groupdq(before)
    if change is not None:
        score = np.nan_to_num(np.abs(change))
    else:
        score = (new_group != 0).sum(axis=0).astype(float)
    if not score.any():
        _note(ax, "no ramp changed")
        return ""
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    reads = np.arange(after.sizes["resultant"])
    ax.plot(reads, before["data"].values[:, y, x], "o-", color="0.6", label="before")
    ax.plot(reads, after["data"].values[:, y, x], "o-", color="C0", label="after")
    flagged = new_group[:, y, x] != 0
    if flagged.any():
        ax.plot(
            reads[flagged],
            after["data"].values[flagged, y, x],
            "x",
            color="C3",
            ms=10,
            mew=2,
            label="newly flagged",
        )
    ax.set_xlabel("resultant")
    ax.set_ylabel("DN")
    ax.set_title(f"ramp of pixel (y={y}, x={x})", fontsize="medium")
    ax.legend(fontsize="small")
    said = f"the ramp shown is pixel (y={y}, x={x})"
    return said + (f", {int(flagged.sum())} resultants newly flagged" if flagged.any() else "")


def step_figure(spec: Any, before: Any, after: Any, path: Path) -> str:
    """Write the figure of one step to ``path``; return its caption."""
    from matplotlib.figure import Figure

    from romanxr.plot import quicklook_figure

    if spec.name == "ramp_fit":
        fig = quicklook_figure(after, ramp=before, title="ramp_fit: resultants to a slope (DN/s)")
        fig.savefig(path, dpi=80)
        return "The slope image ramp_fit makes, its DQ flags and the ramp of a jump pixel."
    if spec.name in ("source_catalog", "tweakreg"):
        catalog = after.roman.catalog
        fig = quicklook_figure(after, catalog=catalog, title=f"{spec.name}: the image's sources")
        fig.savefig(path, dpi=80)
        return f"{len(catalog)} sources in the catalog, circled on the image."
    fig = Figure(figsize=(12, 3.8), dpi=80, layout="constrained")
    axes = fig.subplots(1, 3)
    ramp = "resultant" in after["data"].dims
    what = "last resultant" if ramp else "image"
    shown = _show(axes[0], _frame(after), f"after {spec.name}: {what}")
    fig.colorbar(shown, ax=axes[0], shrink=0.8)
    change, said = _change_panel(fig, axes[1], before, after)
    flags = ""
    if change is None:  # the middle panel shows the flags it set instead (or says so)
        flags = _flag_panel(fig, axes[1], before, after)
        if flags == "no new DQ flag":
            _note(axes[1], said + "\nno new DQ flag")
    if ramp:
        flags = "; ".join(s for s in (flags, _ramp_panel(axes[2], before, after, change)) if s)
    elif change is not None:
        flags = _flag_panel(fig, axes[2], before, after)
    else:
        _note(axes[2], f"what {spec.name} records: meta.cal_step.{spec.cal_step or spec.name}")
    said = said.replace("\n", "; ")
    detector = after.attrs["meta"]["instrument"]["detector"]
    fig.suptitle(f"{spec.name} on a simulated {detector} exposure ({SIZE}x{SIZE})")
    fig.savefig(path, dpi=80)
    return "; ".join(s for s in (said, flags) if s) + "."


def write_figures(folder: Path) -> dict[str, str]:
    """Write ``<step>.png`` for every step into ``folder``; return step -> caption."""
    folder.mkdir(parents=True, exist_ok=True)
    captions = {}
    with tempfile.TemporaryDirectory(prefix="romanxr-docs-") as work:
        for spec, before, after in chain(Path(work)):
            captions[spec.name] = step_figure(spec, before, after, folder / f"{spec.name}.png")
    return captions
