"""Random invalid metadata through the reader: always a romanxr error, never another exception.

Files are made by editing the YAML text of a valid small uncal (``read_pattern``,
``frame_time``, ``nresultants``, the data's ``shape`` and ``datatype``); the block index then no
longer matches and asdf reads the blocks serially, which is fine. Opening either succeeds with a
valid Dataset or raises :class:`RomanxrError`.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import romanxr  # noqa: E402
from romanxr.dataset import validate_read_pattern  # noqa: E402
from romanxr.errors import RomanxrError  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::asdf.exceptions.AsdfBlockIndexWarning",
    "ignore::asdf.exceptions.AsdfConversionWarning",
    "ignore::asdf.exceptions.AsdfWarning",
)

NRES = 3

#: JSON-like values, from plausible to absurd.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 12),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.text(alphabet="ab1-[] ", max_size=4),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from("ab"), inner),
    max_leaves=10,
)
read_pattern_like = st.one_of(
    values, st.lists(st.lists(st.integers(-1, 8), max_size=3), max_size=5)
)


@pytest.fixture(scope="module")
def uncal_text(tmp_path_factory):
    import roman_datamodels.datamodels as dm

    model = dm.ScienceRawModel.create_fake_data(shape=(NRES, 16, 16))
    model.meta.exposure.read_pattern = [[1], [2], [3]]
    model.meta.exposure.frame_time = 3.04
    model.data = np.arange(NRES * 256, dtype=np.uint16).reshape(NRES, 16, 16)
    path = tmp_path_factory.mktemp("fuzz") / "f_uncal.asdf"
    model.save(path)
    return path.read_bytes()


def _flow(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("\n...").strip()


def _replace_field(raw: bytes, field: str, value) -> bytes:
    """Replace ``field: ...`` (and its block-style continuation lines) in the YAML tree."""
    head, sep, tail = raw.partition(b"\n...\n")
    lines = head.decode("utf-8").split("\n")
    for i, line in enumerate(lines):
        if line.lstrip().startswith(f"{field}:"):
            indent = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and (
                len(lines[j]) - len(lines[j].lstrip()) > indent
                or (
                    lines[j].lstrip().startswith("- ")
                    and len(lines[j]) - len(lines[j].lstrip()) >= indent
                )
            ):
                j += 1
            lines[i:j] = [f"{' ' * indent}{field}: {_flow(value)}"]
            break
    else:
        raise AssertionError(f"{field} not in the tree")
    return "\n".join(lines).encode("utf-8") + sep + tail


def _open(tmp_path, raw: bytes):
    path = tmp_path / "fuzzed_uncal.asdf"
    path.write_bytes(raw)
    try:
        ds = romanxr.open_uncal(path, chunks=None)
    except RomanxrError:
        return None
    # opened: then it is a consistent Dataset
    assert ds["data"].dims == ("resultant", "y", "x")
    assert ds.sizes["resultant"] == len(ds.attrs["meta"]["exposure"]["read_pattern"])
    return ds


@given(read_pattern=read_pattern_like, frame_time=values | st.floats(-10, 10))
def test_random_exposure_metadata(uncal_text, tmp_path_factory, read_pattern, frame_time):
    tmp_path = tmp_path_factory.mktemp("f")
    raw = _replace_field(uncal_text, "read_pattern", read_pattern)
    raw = _replace_field(raw, "frame_time", frame_time)
    _open(tmp_path, raw)


@given(nresultants=values, field=st.sampled_from(["nresultants", "ma_table_number", "type"]))
def test_random_other_exposure_fields(uncal_text, tmp_path_factory, nresultants, field):
    _open(tmp_path_factory.mktemp("f"), _replace_field(uncal_text, field, nresultants))


@given(
    shape=st.lists(st.integers(-1, 20), max_size=4) | values,
    datatype=st.sampled_from(["uint16", "int32", "float32", "float64", "bogus", "uint8"]),
)
def test_random_data_shape_and_type(uncal_text, tmp_path_factory, shape, datatype):
    """The data block's declared shape and datatype do not match the bytes behind them."""
    text = uncal_text.decode("latin-1")
    match = re.search(r"  data: !core/ndarray-[0-9.]+\n((?:    .*\n)+)", text)
    assert match is not None
    body = match.group(1)
    body = re.sub(r"datatype: \S+", f"datatype: {datatype}", body)
    body = re.sub(r"shape: .*", f"shape: {_flow(shape)}", body)
    raw = (text[: match.start(1)] + body + text[match.end(1) :]).encode("latin-1")
    ds = _open(tmp_path_factory.mktemp("f"), raw)
    if ds is not None:  # what opened must also read, or fail with a typed error
        try:
            ds["data"].values  # noqa: B018
        except RomanxrError:
            pass


@given(read_pattern=read_pattern_like, frame_time=values, n=st.integers(0, 6))
def test_validate_read_pattern_only_raises_exposure_errors(read_pattern, frame_time, n):
    try:
        info = validate_read_pattern(read_pattern, frame_time, n, source="x")
    except RomanxrError:
        return
    assert len(info) == n and info.frame_time > 0
