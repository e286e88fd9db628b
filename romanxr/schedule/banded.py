"""A whole-frame correction driven by a frame's border pixels, streamed by bands of rows.

Some corrections of a ``(resultant, y, x)`` frame need something from every row before any
row can be corrected (refpix: reference spectra of the border columns of all rows). Built
from collection methods, that graph makes every band of rows wait, held in memory, until
the last band has been read. :func:`stream_border_stage` builds it in three levels instead,
from the helpers of :mod:`romanxr.schedule.graph`, so that memory stays at a few bands:

1. **reference**: one small task cuts the border columns and a few rows of every band
   (:func:`~romanxr.schedule.graph.edge_and_row_cuts`) from *clones* of the frame and of the
   bad-pixel mask, so that no band of the main computation is held for it; one task per
   resultant turns them into the stage's reference results, one task stacks them;
2. **pieces**: per block of channels, one task computes the block's part of the correction
   on every row and keeps it in a scratch file (:func:`~romanxr.schedule.scratch.write_frames`);
   per group of bands, one task reads the group's rows back (or, where the file cannot be
   read, computes them again). It is anchored to the group's first band
   (:func:`~romanxr.schedule.graph.chunk_anchors`), so it runs when that band comes up and
   only one group's pieces are held at a time; the file goes after the last group's read;
3. **bands**: each band is corrected on its own with its group's pieces.

The numerics are the caller's (module-level functions on ndarrays, given as a
:class:`BorderStage`); the result equals the same functions run on the whole frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import romanxr.schedule.graph as graph
from romanxr.schedule.scratch import count_read, read_rows, scratch_path, write_frames

__all__ = ["BorderStage", "stream_border_stage"]


class BorderStage(NamedTuple):
    """The numerics of a border-driven stage (module-level functions on ndarrays).

    ``options`` and ``constants`` are the stage's switches and its reference data (e.g.
    coefficients, which may be lazily indexed and are then read block by block).
    """

    #: ``(edges, rows, bad_edges, bad_rows, side, options) -> inputs``: the cut border pixels
    inputs: Callable
    #: ``(inputs, r, options) -> part``: resultant ``r``'s reference results
    resultant: Callable
    #: ``(parts) -> (reference, fits, side)``: all resultants' results stacked
    stack: Callable
    #: ``(reference, constants, c0, c1) -> iterator of (y, width) arrays``, one per resultant
    block_frames: Callable
    #: ``(inputs, options, constants, c0, c1, rows) -> (resultant, rows, width)``: a group's
    #: piece computed from the inputs (when the scratch file cannot be read)
    block_rows: Callable
    #: ``(block, bad, fits, pieces, y0, ny, rows, options) -> corrected band``
    band: Callable
    #: ``(row edges of the bands, n resultants, n columns) -> bands grouped``
    groups: Callable
    #: ``(n channels) -> [(c0, c1), ...]``: the blocks of channels that one task computes
    blocks: Callable
    #: columns per channel
    channel_width: int


def _spill(block_frames: Callable, reference: Any, constants: graph.Opaque, c0: int, c1: int, path):
    """A block's piece on every row, written to the scratch file ``path``; the path or None."""
    return write_frames(path, block_frames(reference, constants.value, c0, c1))


def _read_back(
    spilled: str | None,
    block_rows: Callable,
    shape: tuple[int, int],
    inputs: Any,
    options: Any,
    constants: graph.Opaque,
    c0: int,
    c1: int,
    rows: slice,
    n_groups: int,
    width: int,
    *after: Any,
) -> np.ndarray:
    """Rows ``rows`` of :func:`_spill`'s file (removed once all ``n_groups`` groups have read
    it, in any order), or computed from the inputs where it cannot be read (a worker on
    another machine). Not from the reference results: those may be larger and would be held
    until the last group. ``after`` only orders the task (values ignored)."""
    nres, ny = shape
    out = read_rows(spilled, (nres, ny, (c1 - c0) * width), np.float32, rows)
    if out is not None:
        count_read(spilled, n_groups)
        return out
    return block_rows(inputs, options, constants.value, c0, c1, rows)


def _reference(frame, bad, side, stage: BorderStage, options, rows, edge, name, token):
    """Delayed stage inputs and stacked reference results (level 1)."""
    import dask

    whole = {0: -1, 2: -1}
    twin = graph.clone(frame).rechunk(whole)  # clone before rechunking: see graph.clone()
    bad_twin = graph.clone(bad).rechunk((frame.rechunk(whole).chunks[1], -1))
    inputs = graph.single_chunk_task(
        f"{name}-inputs-{token}",
        stage.inputs,
        [
            *graph.edge_and_row_cuts(twin, rows, edge, name),
            *graph.edge_and_row_cuts(bad_twin, rows, edge, name),
            side.rechunk(-1),
        ],
        options,
    )
    parts = [
        dask.delayed(stage.resultant, pure=True)(
            inputs, r, options, dask_key_name=f"{name}-resultant-{token}-{r}"
        )
        for r in range(frame.shape[0])
    ]
    stacked = dask.delayed(stage.stack, pure=True, nout=3)(
        parts, dask_key_name=f"{name}-reference-{token}"
    )
    return inputs, stacked


def stream_border_stage(
    frame: Any,
    bad: Any,
    side: Any,
    stage: BorderStage,
    options: Any,
    constants: Any,
    *,
    rows: np.ndarray,
    edge: int,
    name: str,
    token: str,
    side_name: str = "side",
) -> tuple[Any, Any]:
    """The corrected ``frame`` and ``side`` (dask arrays) of a :class:`BorderStage`.

    Parameters
    ----------
    frame : dask array (resultant, y, x)
        The frame to correct; its row chunks become the bands.
    bad : dask array (y, x) of bool
        Pixels the stage treats as bad.
    side : dask array (resultant, y, w)
        A side channel read with the frame (refpix: amp33), corrected from the references.
    stage, options, constants :
        The numerics (see :class:`BorderStage`).
    rows : ndarray of int
        Rows the reference level needs (besides the ``edge`` border columns of every row).
    name, token, side_name : str
        Prefix and token of the task keys, and the side channel's name in its key.
    """
    import dask
    import dask.array as da

    nres, ny, nx = frame.shape
    inputs, stacked = _reference(frame, bad, side, stage, options, rows, edge, name, token)
    reference, fits, _ = stacked
    frame = frame.rechunk({0: -1, 2: -1})
    ychunks = frame.chunks[1]
    bad = bad.rechunk((ychunks, -1))
    edges = np.concatenate([[0], np.cumsum(ychunks)]).astype(int)
    first_band = graph.chunk_anchors(frame)[0, :, 0]
    groups = stage.groups(edges, nres, nx)
    # the tasks take the constants as they are (read block by block), never normalised
    constants = graph.Opaque(constants, token)
    blocks = stage.blocks(nx // stage.channel_width)
    spills = [
        dask.delayed(_spill, pure=True)(
            stage.block_frames,
            reference,
            constants,
            c0,
            c1,
            scratch_path(f"{name}-{token}-{j}.f32"),
            dask_key_name=f"{name}-spill-{token}-{j}",
        )
        for j, (c0, c1) in enumerate(blocks)
    ]
    parts = []
    for g, bands in enumerate(groups):
        lo, hi = int(edges[bands[0]]), int(edges[bands[-1] + 1])
        pieces = [
            dask.delayed(_read_back, pure=True)(
                spills[j],
                stage.block_rows,
                (nres, ny),
                inputs,
                options,
                constants,
                c0,
                c1,
                slice(lo, hi),
                len(groups),
                stage.channel_width,
                first_band[bands[0]],
                dask_key_name=f"{name}-corrections-{token}-{g}-{j}",
            )
            for j, (c0, c1) in enumerate(blocks)
        ]

        def band_args(k: int, lo: int = lo) -> tuple:
            y0, y1 = int(edges[k]), int(edges[k + 1])
            return (y0, ny, slice(y0 - lo, y1 - lo), options)

        chunks = ((nres,), ychunks[bands[0] : bands[-1] + 1], (nx,))
        parts.append(
            graph.map_row_chunks(
                stage.band,
                [frame, bad],
                bands,
                [fits, pieces],
                band_args,
                f"{name}-{token}-{g}",
                chunks,
                np.float32,
            )
        )
    side_chunks = ((nres,), (ny,), (side.shape[-1],))
    side_out = graph.item_array(stacked, 2, f"{name}-{side_name}-{token}", side_chunks, np.float32)
    return da.concatenate(parts, axis=1), side_out
