"""The one preprocessing function: known pixel values, geometry, dtypes, and the way back."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrclip.config import OFFICIAL_RESIZE, PreprocessConfig
from cxrclip.preprocess import (crop_geometry, map_to_image, preprocess_batch, preprocess_image,
                                to_uint8)

SMALL = PreprocessConfig(image_size=10, resize_shorter=10, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _expected(value: float, config: PreprocessConfig) -> torch.Tensor:
    mean = torch.tensor(config.mean, dtype=torch.float64)
    std = torch.tensor(config.std, dtype=torch.float64)
    return ((value / 255.0 - mean) / std).float()


@pytest.mark.parametrize("config", [PreprocessConfig.imagenet(), PreprocessConfig.half()])
def test_constant_image_gives_exact_normalised_value(config):
    out = preprocess_image(np.full((300, 410), 128, dtype=np.uint8), config)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    expected = _expected(128, config).view(3, 1, 1).expand_as(out)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_already_right_size_image_is_only_normalised():
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    out = preprocess_image(image, SMALL)
    torch.testing.assert_close(out[0], torch.from_numpy(image / 127.5 - 1.0).float())
    torch.testing.assert_close(out[0], out[2])


def test_shorter_side_resize_and_centre_crop_on_wide_image():
    geo = crop_geometry(20, 40, SMALL)
    assert (geo.resized_height, geo.resized_width, geo.top, geo.left) == (10, 20, 0, 5)
    assert geo.crop_box() == (0.0, 10.0, 20.0, 30.0)
    image = np.zeros((20, 40), dtype=np.uint8)
    image[4:6, 20:22] = 255  # lands on resized pixel (2, 10) -> crop pixel (2, 5)
    image[8:10, 0:2] = 255  # left margin: cropped away
    out = preprocess_image(image, SMALL)[0]
    assert divmod(int(out.argmax()), 10) == (2, 5)
    assert out[4, 0] == pytest.approx(-1.0, abs=0.02)  # no trace of the cropped marker


def test_tall_image_crops_top_and_bottom():
    geo = crop_geometry(45, 15, PreprocessConfig(image_size=4, resize_shorter=5))
    assert (geo.resized_height, geo.resized_width, geo.top, geo.left) == (15, 5, 5, 0)
    image = np.zeros((45, 15), dtype=np.uint8)
    image[21:24, 6:9] = 255  # centre block -> resized (7, 2) -> crop (2, 2)
    out = preprocess_image(image, PreprocessConfig(image_size=4, resize_shorter=5, mean=(0.5,) * 3,
                                                   std=(0.5,) * 3))[0]
    assert divmod(int(out.argmax()), 4) == (2, 2)


def test_uint16_is_min_max_scaled():
    image = np.array([[1000, 2000], [3000, 3000]], dtype=np.uint16)
    np.testing.assert_array_equal(to_uint8(image), [[0, 128], [255, 255]])
    np.testing.assert_array_equal(to_uint8(np.full((3, 3), 7.5)), np.zeros((3, 3), np.uint8))
    float_image = np.array([[-1.0, np.nan], [1.0, 0.0]])
    np.testing.assert_array_equal(to_uint8(float_image), [[0, 0], [255, 128]])
    assert to_uint8(np.full((2, 2), 9, np.uint8)).tolist() == [[9, 9], [9, 9]]


def test_rgb_input_uses_luminance():
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red: 0.299 * 255 = 76.2 -> 76
    np.testing.assert_array_equal(to_uint8(rgb), np.full((10, 10), 76, np.uint8))
    grey_rgb = np.repeat(np.arange(100, dtype=np.uint8).reshape(10, 10, 1), 3, axis=2)
    torch.testing.assert_close(preprocess_image(grey_rgb, SMALL), preprocess_image(grey_rgb[..., 0], SMALL))
    rgba = np.concatenate([grey_rgb, np.zeros((10, 10, 1), np.uint8)], axis=2)
    np.testing.assert_array_equal(to_uint8(rgba), grey_rgb[..., 0])


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(4, 4, 2\)"):
        to_uint8(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match="empty"):
        to_uint8(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="empty"):
        preprocess_batch([], SMALL)


def test_batch_stacks_images():
    images = [np.full((12, 30), 0, np.uint8), np.full((40, 11), 255, np.uint8)]
    batch = preprocess_batch(images, SMALL)
    assert batch.shape == (2, 3, 10, 10)
    assert batch[0].max().item() == pytest.approx(-1.0) and batch[1].min().item() == pytest.approx(1.0)


def test_map_to_image_hot_cell_lands_in_its_region():
    config = PreprocessConfig(image_size=8, resize_shorter=8)
    grid = np.zeros((2, 2))
    grid[0, 1] = 1.0  # top-right quarter of the crop; crop spans x 100..300 of a 200 x 400 image
    out = map_to_image(grid, 200, 400, config, interpolation="nearest")
    assert out.shape == (200, 400) and out.dtype == np.float32
    hot = np.argwhere(out == 1.0)
    assert hot.min(0).tolist() == [0, 200] and hot.max(0).tolist() == [99, 299]
    assert np.isnan(out[:, :100]).all() and np.isnan(out[:, 300:]).all()
    assert np.nansum(out) == 100 * 100
    edge = map_to_image(grid, 200, 400, config, interpolation="nearest", outside="edge")
    assert not np.isnan(edge).any()
    assert (edge[:100, 300:] == 1.0).all() and (edge[:, :100] == 0.0).all()


def test_map_to_image_bilinear_is_smooth_and_peaks_at_the_cell():
    config = PreprocessConfig(image_size=8, resize_shorter=8)
    grid = np.zeros((7, 7))
    grid[3, 5] = 1.0
    out = map_to_image(grid, 300, 300, config)
    y, x = np.unravel_index(np.nanargmax(out), out.shape)
    assert abs(y - 150) <= 22 and abs(x - (5.5 / 7) * 300) <= 22
    assert np.nanmax(out) <= 1.0 and np.nanmin(out) >= 0.0
    constant = map_to_image(np.full((7, 7), 0.3), 300, 300, config)
    np.testing.assert_allclose(constant, 0.3, rtol=1e-6)


def test_map_to_image_round_trip_through_preprocess():
    # A bright square in the image shows up at the same place after preprocess -> 2x2 pooling -> back.
    config = PreprocessConfig(image_size=8, resize_shorter=8, mean=(0.0,) * 3, std=(1.0,) * 3)
    image = np.zeros((160, 240), dtype=np.uint8)
    image[0:80, 120:200] = 255  # crop spans x 40..200, so this is its top-right quarter
    crop = preprocess_image(image, config)[0].numpy()
    pooled = crop.reshape(2, 4, 2, 4).mean(axis=(1, 3))
    assert np.unravel_index(pooled.argmax(), pooled.shape) == (0, 1)
    back = map_to_image(pooled, 160, 240, config, interpolation="nearest")
    assert back[40, 160] == pytest.approx(pooled.max()) and back[120, 80] == pytest.approx(pooled.min())


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.int32, np.float32])
def test_integer_lookup_matches_float_min_max(dtype):
    rng = np.random.default_rng(5)
    low = -300 if np.issubdtype(dtype, np.signedinteger) or dtype == np.float32 else 40
    image = rng.integers(low, 3000, (17, 23)).astype(dtype)
    values = image.astype(np.float64)
    expected = np.rint((values - values.min()) * (255.0 / (values.max() - values.min())))
    np.testing.assert_array_equal(to_uint8(image), expected.astype(np.uint8))


# --- the official CXR-CLIP evaluation transform -------------------------------------------------
# Its definition (kakaobrain/cxr-clip, configs/transform/clahe.yaml "test" + data_utils.transform_image):
# Image.open(path).convert("RGB") -> torchvision Resize(224) -> CenterCrop(224) -> ToTensor -> Normalize.
# torchvision Resize(int) on a PIL image: short side = size, long side = int(size * long / short)
# (truncated), PIL resize with BILINEAR (PIL always antialiases: triangle filter whose support is
# scaled by the downscale factor, pixel centres at i + 0.5, 8-bit fixed-point result).
# CenterCrop: top = int(round((H - size) / 2.0)), left likewise (Python round: half to even).
OFFICIAL_SMALL = PreprocessConfig(image_size=4, resize_shorter=4, mean=(0.0,) * 3, std=(1.0,) * 3,
                                  **OFFICIAL_RESIZE)


def test_official_transform_on_a_hand_made_ramp():
    # 8 x 14 image whose column j has value 16 j. Resize(4): 4 x int(4 * 14 / 8) = 4 x 7, scale 2 in
    # both directions. A 2x antialiased bilinear (triangle) filter gives interior output column i the
    # weights 1/8, 3/8, 3/8, 1/8 on input columns 2i-1 .. 2i+2, so on this linear ramp it gives
    # (16(2i-1) + 3*16(2i) + 3*16(2i+1) + 16(2i+2)) / 8 = 32 i + 8, exactly (no rounding involved).
    # Rows are constant, so the vertical pass keeps them. CenterCrop(4): left = round(1.5) = 2,
    # top = 0, so the crop holds output columns 2..5: 72, 104, 136, 168.
    image = np.tile(np.arange(14, dtype=np.uint8) * 16, (8, 1))
    out = preprocess_image(image, OFFICIAL_SMALL)
    expected = torch.tensor([72.0, 104.0, 136.0, 168.0]) / 255.0
    torch.testing.assert_close(out, expected.expand(3, 4, 4), rtol=0, atol=1e-6)
    # Our own default (bicubic, float, floor offset 1) gives other pixels on the same image.
    ours = preprocess_image(image, PreprocessConfig(4, 4, (0.0,) * 3, (1.0,) * 3))
    assert not torch.allclose(ours, out, atol=1e-3)


def test_official_long_side_is_truncated_and_crop_offset_rounds_half_to_even():
    official = PreprocessConfig.official("swin_tiny")
    ours = PreprocessConfig.half()
    # 224 * 3185 / 3000 = 237.81: torchvision truncates to 237, we round to 238; the crop offsets are
    # round(6.5) = 6 (half to even) and (238 - 224) // 2 = 7: ours starts one pixel later.
    geo = crop_geometry(3000, 3185, official)
    assert (geo.resized_height, geo.resized_width, geo.top, geo.left) == (224, 237, 0, 6)
    geo = crop_geometry(3000, 3185, ours)
    assert (geo.resized_height, geo.resized_width, geo.top, geo.left) == (224, 238, 0, 7)
    # 4 * 13 / 8 = 6.5: int() -> 6, round half up -> 7. Margin 3: round(1.5) = 2, floor -> 1.
    assert crop_geometry(8, 13, OFFICIAL_SMALL).resized_width == 6
    assert crop_geometry(8, 13, PreprocessConfig(4, 4)).resized_width == 7
    assert crop_geometry(14, 8, OFFICIAL_SMALL).top == 2 and crop_geometry(14, 8, PreprocessConfig(4, 4)).top == 1


@pytest.mark.parametrize("shape", [(300, 371), (371, 300), (224, 301), (250, 250)])
def test_official_config_reproduces_the_official_pipeline_written_with_pil(shape):
    # The reference is the official transform's definition spelled out with PIL itself (what
    # torchvision's PIL path calls) on an RGB image: no cxrclip code involved.
    from PIL import Image

    rng = np.random.default_rng(11)
    gray = np.clip(rng.normal(128, 60, shape), 0, 255).astype(np.uint8)
    height, width = shape
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(224 * long / short)
    new_w, new_h = (224, new_long) if width <= height else (new_long, 224)
    rgb = Image.fromarray(gray).convert("RGB").resize((new_w, new_h), Image.Resampling.BILINEAR)
    top, left = int(round((new_h - 224) / 2.0)), int(round((new_w - 224) / 2.0))
    crop = np.asarray(rgb.crop((left, top, left + 224, top + 224)), dtype=np.float32)
    reference = torch.from_numpy(crop).permute(2, 0, 1) / 255.0
    config = PreprocessConfig.official("swin_tiny")
    reference = (reference - 0.5) / 0.5
    # Same 8-bit pixels, same float32 arithmetic: equal up to float32 rounding of the normalisation.
    torch.testing.assert_close(preprocess_image(gray, config), reference, rtol=0, atol=1e-6)


def test_official_crop_box_and_heatmap_mapping_follow_the_rules():
    geo = crop_geometry(8, 14, OFFICIAL_SMALL)  # resized 4 x 7, crop columns 2..5 -> x 4..12
    assert geo.crop_box() == (0.0, 4.0, 8.0, 12.0)
    out = map_to_image(np.ones((2, 2)), 8, 14, OFFICIAL_SMALL, interpolation="nearest")
    assert np.isnan(out[:, :4]).all() and np.isnan(out[:, 12:]).all() and (out[:, 4:12] == 1.0).all()


def test_preprocess_choices_are_checked():
    with pytest.raises(ValueError, match=r"preprocess.interpolation must be one of \['bicubic', 'bilinear'\]"):
        PreprocessConfig(interpolation="lanczos")
    with pytest.raises(ValueError, match="preprocess.crop_offset"):
        PreprocessConfig(crop_offset="ceil")
