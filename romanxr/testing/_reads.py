"""Fused per-pixel read simulation (numba): the hot loop of :mod:`romanxr.testing.simulate`."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def simulate_reads(
    electron_rate,
    gain,
    bias,
    beta,
    read_noise,
    saturation,
    grid,
    read_col,
    offsets,
    used_reads,
    dt,
    res_index,
    jump_read,
    jump_electrons,
    inl_value,
    inl_correction,
    inl_channel,
    noiseless,
    rng,
    out,
    first_sat,
):
    """Accumulate the digitised reads of a band of rows into ``out`` (sum per resultant).

    Per pixel and used read ``u`` (read number ``used_reads[u]``, ``dt[u]`` seconds after the
    previous used read): Poisson electrons, jump electrons from ``jump_read`` on, linear DN
    ``bias + e / gain``, non-linearity ``x - beta x**2``, additive ``grid[u, row, read_col]
    + offsets`` (drift and dark decay), Gaussian read noise, saturation bookkeeping, ADC
    (minus INL, rounded, clipped to 0..65535). NaN thresholds never saturate. ``rng`` is a
    numpy Generator (numba draws from its bit generator, so the stream is reproducible); the
    GIL is released, so bands can run in threads.
    """
    nb, nx = electron_rate.shape
    nused = used_reads.size
    use_inl = inl_value.size > 0
    nval = inl_value.size
    for i in range(nb):
        for j in range(nx):
            electrons = 0.0
            jr = jump_read[i, j]
            jumped = False
            g = gain[i, j]
            b = bias[i, j]
            nl = beta[i, j]
            rn = read_noise[i, j]
            sat = saturation[i, j]
            rate = electron_rate[i, j]
            col = read_col[j]
            off = offsets[j]
            for u in range(nused):
                k = used_reads[u]
                lam = rate * dt[u]
                if noiseless:
                    electrons += lam
                elif lam > 0.0:
                    electrons += rng.poisson(lam)
                if jr > 0 and not jumped and k >= jr:
                    electrons += jump_electrons[i, j]
                    jumped = True
                linear = b + electrons / g
                obs = linear - nl * linear * linear + grid[u, i, col] + off
                if not noiseless:
                    obs += rn * rng.standard_normal()
                if first_sat[i, j] == 0 and obs >= sat:
                    first_sat[i, j] = k
                if use_inl:
                    c = inl_channel[j]
                    if obs <= inl_value[0]:
                        corr = inl_correction[c, 0]
                    elif obs >= inl_value[nval - 1]:
                        corr = inl_correction[c, nval - 1]
                    else:
                        hi = np.searchsorted(inl_value, obs)
                        lo = hi - 1
                        w = (obs - inl_value[lo]) / (inl_value[hi] - inl_value[lo])
                        corr = inl_correction[c, lo] + w * (
                            inl_correction[c, hi] - inl_correction[c, lo]
                        )
                    obs -= corr
                obs = np.rint(obs)
                if obs < 0.0:
                    obs = 0.0
                elif obs > 65535.0:
                    obs = 65535.0
                out[res_index[u], i, j] += obs
