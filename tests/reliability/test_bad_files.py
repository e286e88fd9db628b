"""Bad files (issue #8, items 1 and 2): each fails at open with a typed error naming the file.

Detectable at open: not ASDF, a YAML tree cut short, a binary block that extends past the end
of the file, the wrong product. Damage *inside* a block's payload is only visible when the
block is read (or with :func:`romanxr.io.integrity.verify_checksums`, which reads every
block): a compressed block that no longer decompresses raises :class:`FileFormatError`
naming the file from inside the compute.
"""

from __future__ import annotations

import asdf
import dask
import numpy as np
import pytest
import roman_datamodels.datamodels as dm

import romanxr
from romanxr.errors import FileFormatError, RomanxrError, WrongProductError
from romanxr.io.integrity import verify_checksums

pytestmark = pytest.mark.filterwarnings(
    "ignore::asdf.exceptions.AsdfConversionWarning",
    "ignore::asdf.exceptions.AsdfBlockIndexWarning",
    "ignore::asdf.exceptions.AsdfPackageVersionWarning",
)


def _blocks(path):
    """(data start, used size) of every binary block, from asdf's own block reader."""
    with asdf.open(path, lazy_load=True) as af:
        out = []
        for b in af._blocks.blocks:
            with open(path, "rb") as fh:
                fh.seek(b.offset)
                hsize = int.from_bytes(fh.read(2), "big")
            out.append((b.offset + 2 + hsize, int(b.header["used_size"])))
    return out


def test_not_asdf_names_the_file(tmp_path):
    path = tmp_path / "notes_uncal.asdf"
    path.write_text("SIMPLE  = T / a FITS file, not ASDF\n")
    with pytest.raises(FileFormatError, match=r"notes_uncal\.asdf: not an ASDF file"):
        romanxr.open_uncal(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty_uncal.asdf"
    path.write_bytes(b"")
    with pytest.raises(FileFormatError, match="not an ASDF file"):
        romanxr.open_uncal(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"gone_uncal\.asdf"):
        romanxr.open_uncal(tmp_path / "gone_uncal.asdf")


def test_truncated_inside_the_yaml_tree(tmp_uncal):
    path = tmp_uncal()
    raw = path.read_bytes()
    cut = raw.index(b"read_pattern")  # well inside the tree
    path.write_bytes(raw[:cut])
    with pytest.raises(FileFormatError, match=r"r_uncal.asdf: .*(truncated|corrupt)"):
        romanxr.open_uncal(path)


def test_truncated_inside_each_data_block(tmp_uncal):
    path = tmp_uncal()
    raw = path.read_bytes()
    blocks = _blocks(path)
    assert len(blocks) >= 2
    for start, used in blocks:
        path.write_bytes(raw[: start + used // 2])
        with pytest.raises(FileFormatError, match="truncated"):
            romanxr.open_uncal(path)


def test_every_truncation_point_is_a_typed_error_at_open(tmp_uncal):
    """Cutting the file anywhere before the block index fails at open, never later."""
    path = tmp_uncal(shape=(3, 16, 16))
    raw = path.read_bytes()
    last_data = max(start + used for start, used in _blocks(path))
    for cut in range(0, last_data, max(1, last_data // 60)):
        path.write_bytes(raw[:cut])
        with pytest.raises(FileFormatError):
            romanxr.open_uncal(path, chunks=None)


def test_flipped_bytes_in_compressed_block_fail_at_read_with_file_name(tmp_path):
    model = dm.ScienceRawModel.create_fake_data(shape=(4, 16, 16))
    model.meta.exposure.read_pattern = [[1], [2], [3], [4]]
    model.meta.exposure.frame_time = 3.04
    model.data = np.random.default_rng(1).integers(1000, 2000, (4, 16, 16), dtype=np.uint16)
    path = tmp_path / "z_uncal.asdf"
    model.save(path, all_array_compression="zlib")
    start, _ = _blocks(path)[0]
    raw = bytearray(path.read_bytes())
    for i in range(start + 20, start + 28):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    # the structure is intact: open succeeds (checking payloads would read the whole file)
    ds = romanxr.open_uncal(path)
    # reading the damaged block fails with a typed error naming the file and the array
    with pytest.raises(FileFormatError, match=r"z_uncal.asdf: reading roman.data failed"):
        ds["data"].compute()
    # verify_checksums finds it without computing anything
    with pytest.raises(FileFormatError, match="block 0 does not match its MD5 checksum"):
        verify_checksums(path)


def test_verify_checksums_passes_good_files_and_catches_silent_damage(tmp_uncal):
    """lz4 (roman_datamodels' default) can decompress damaged bytes into wrong values
    without any error; only the block checksum shows it."""
    path = tmp_uncal()
    verify_checksums(path)  # no error
    start, used = _blocks(path)[0]
    raw = bytearray(path.read_bytes())
    raw[start + used - 3] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="checksum"):
        verify_checksums(path)


def test_file_deleted_after_open_is_a_typed_error_at_read(tmp_uncal):
    path = tmp_uncal(name="moved_uncal.asdf")
    ds = romanxr.open_uncal(path)
    path.unlink()
    with dask.config.set(scheduler="synchronous"), pytest.raises(RomanxrError, match="moved_uncal"):
        ds["data"].compute()


# ---- the wrong product (item 2) ---------------------------------------------------------


def _save(model, path):
    model.save(path)
    return path


def test_cal_given_where_uncal_expected(tmp_path):
    path = _save(dm.ImageModel.create_fake_data(shape=(8, 8)), tmp_path / "x_cal.asdf")
    with pytest.raises(
        WrongProductError, match=r"expected a wfi_science_raw \(uncal\).*wfi_image \(cal\)"
    ):
        romanxr.open_uncal(path)


def test_ramp_given_where_uncal_expected(tmp_path):
    path = _save(dm.RampModel.create_fake_data(shape=(3, 8, 8)), tmp_path / "x_ramp.asdf")
    with pytest.raises(WrongProductError, match=r"expected a wfi_science_raw.*ramp \(ramp\)"):
        romanxr.open_uncal(path)


def test_uncal_given_where_cal_expected(tmp_uncal):
    with pytest.raises(WrongProductError, match=r"expected a wfi_image \(cal\).*uncal"):
        romanxr.open_cal(tmp_uncal())


def test_reference_file_given_where_uncal_expected(tmp_path):
    path = _save(dm.GainRefModel.create_fake_data(shape=(8, 8)), tmp_path / "gain.asdf")
    with pytest.raises(WrongProductError, match=r"expected a wfi_science_raw.*holds gain"):
        romanxr.open_uncal(path)


def test_plain_asdf_without_roman_node(tmp_path):
    path = tmp_path / "plain.asdf"
    asdf.AsdfFile({"data": np.zeros((2, 2), np.uint16), "note": "hi"}).write_to(path)
    with pytest.raises(
        WrongProductError, match=r"without a .roman. node \(top-level keys: data, history, note\)"
    ):
        romanxr.open_uncal(path)


def _retag(path, new_name):
    raw = path.read_bytes()
    old = b"wfi_science_raw-2"
    assert len(new_name) == len(old) and old in raw
    path.write_bytes(raw.replace(old, new_name))
    return path


def test_newer_tag_version(tmp_uncal):
    path = _retag(tmp_uncal(), b"wfi_science_raw-9")
    with pytest.raises(WrongProductError, match=r"wfi_science_raw-9.* newer than .*upgrade"):
        romanxr.open_uncal(path)


def test_unknown_tag(tmp_uncal):
    path = _retag(tmp_uncal(), b"wfi_science_zzz-2")
    with pytest.raises(WrongProductError, match=r"expected a wfi_science_raw.*wfi_science_zzz"):
        romanxr.open_uncal(path)


def test_errors_subclass_builtins():
    assert issubclass(FileFormatError, ValueError)
    assert issubclass(WrongProductError, ValueError)
    assert issubclass(romanxr.errors.OutputError, OSError)
    assert issubclass(romanxr.errors.ReferenceNotFoundError, FileNotFoundError)


def test_metadata_against_the_schema_names_the_field(tmp_uncal):
    path = tmp_uncal()
    raw = path.read_bytes()
    assert b"frame_time: 3.04" in raw
    path.write_bytes(raw.replace(b"frame_time: 3.04", b"frame_time: 'xx'"))
    with pytest.raises(
        FileFormatError,
        match=r"r_uncal\.asdf: meta\.exposure\.frame_time does not follow the Roman data model",
    ):
        romanxr.open_uncal(path)
