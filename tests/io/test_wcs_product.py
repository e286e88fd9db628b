"""The _wcs.asdf writer: validated once (by asdf as it writes), and an invalid model still
fails with the schema's error and leaves no file behind."""

from __future__ import annotations

import pytest

from romanxr.io.asdf_setup import prepare_asdf
from romanxr.io.wcs_product import write_wcs_product


@pytest.fixture
def image():
    import roman_datamodels.datamodels as dm

    prepare_asdf()
    return dm.ImageModel.create_fake_data(shape=(8, 8))


def test_a_valid_model_is_written_and_reads_back(image, tmp_path):
    import roman_datamodels.datamodels as dm

    target = write_wcs_product(image, tmp_path / "r_wcs.asdf", overwrite=False)
    with dm.open(target) as model:
        assert type(model).__name__ == "WfiWcsModel"
        assert model.meta.filename == "r_wcs.asdf"
        assert model.meta.instrument.detector == image.meta.instrument.detector


def test_an_invalid_model_fails_validation_and_writes_nothing(image, tmp_path):
    image.meta.instrument["detector"] = 12345  # the schema wants a WFInn string
    with pytest.raises(Exception, match="Failed validating") as exc:
        write_wcs_product(image, tmp_path / "r_wcs.asdf", overwrite=False)
    assert type(exc.value).__name__ == "ValidationError"
    assert list(tmp_path.iterdir()) == []
