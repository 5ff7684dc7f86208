"""CXRClip: official key layout, embeddings, feature maps, forward outputs."""
import math

import pytest
import torch

from cxrclip.config import ImageEncoderConfig, ModelConfig, ProjectionConfig, TextEncoderConfig
from cxrclip.model import CXRClip
from cxrclip.text_encoder import load_tokenizer

LEGACY = ("text_encoder.text_encoder.embeddings.position_ids", "relative_position_index")


@pytest.mark.parametrize("backbone, encoder", [("r50", "resnet50"), ("swint", "swin_tiny")])
def test_state_dict_matches_official_manifest_key_for_key(manifest, clinicalbert_dir, backbone, encoder):
    config = ModelConfig(image=ImageEncoderConfig(name=encoder), text=TextEncoderConfig(path=str(clinicalbert_dir)))
    with torch.device("meta"):
        model = CXRClip(config)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    official = {k: v for k, v in manifest[backbone].items() if not any(m in k for m in LEGACY)}
    assert sorted(ours) == sorted(official)
    assert ours == official


def _tokens(model, texts):
    batch = model.tokenizer(texts, padding=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


@pytest.fixture
def tiny_model(tiny_config, tinybert_dir):
    torch.manual_seed(0)
    model = CXRClip(tiny_config("resnet18")).eval()
    model.tokenizer = load_tokenizer(tinybert_dir)
    return model


def test_embeddings_are_unit_length_and_unnormalised_on_request(tiny_model):
    x = torch.randn(3, 3, 64, 64)
    ids, mask = _tokens(tiny_model, ["left pleural effusion", "no pneumonia", "the heart is normal size"])
    with torch.no_grad():
        img, txt = tiny_model.encode_image(x), tiny_model.encode_text(ids, mask)
        raw = tiny_model.encode_image(x, normalize=False)
    assert img.shape == txt.shape == (3, 512)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(raw / raw.norm(dim=-1, keepdim=True), img)


def test_resnet_feature_map_mean_equals_global_projection(tiny_model):
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        fmap = tiny_model.image_feature_map(x)
        global_raw = tiny_model.encode_image(x, normalize=False)
    assert fmap.shape == (2, 512, 2, 3)
    torch.testing.assert_close(fmap.mean(dim=(2, 3)), global_raw, atol=1e-5, rtol=1e-5)
    unit = tiny_model.image_feature_map(x, normalize=True)
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(2, 2, 3))


def test_swin_feature_map_projects_patch_tokens(tiny_config):
    config = tiny_config("swin_tiny", image_size=64)
    config.image.options = {"embed_dim": 8, "depths": [1, 1], "num_heads": [1, 2], "window_size": 4}
    model = CXRClip(config).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fmap = model.image_feature_map(x)
        tokens = model.image_encoder.tokens(x)
    assert fmap.shape == (1, 512, 8, 8)
    torch.testing.assert_close(fmap[0, :, 0, 0], model.image_projection(tokens[0, 0]))
    torch.testing.assert_close(fmap[0, :, 0, 0], model.encode_image(x, normalize=False)[0])


def test_forward_with_feature_maps_returns_the_same_embeddings_and_their_maps(tiny_model, tiny_config):
    swin = tiny_config("swin_tiny", image_size=64)
    swin.image.options = {"embed_dim": 8, "depths": [1, 1], "num_heads": [1, 2], "window_size": 4}
    x1, x2 = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    ids, mask = torch.randint(5, 100, (2, 7)), torch.ones(2, 7, dtype=torch.long)
    for model in (tiny_model.eval(), CXRClip(swin).eval()):
        with torch.no_grad():
            plain = model(x1, ids, mask, images_view2=x2)
            dense = model(x1, ids, mask, images_view2=x2, feature_maps=True)
            want_map = model.image_feature_map(x2)
        assert "image_map" not in plain
        for key in ("image_emb", "image_emb_view2", "text_emb"):
            torch.testing.assert_close(dense[key], plain[key], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(dense["image_map_view2"], want_map, atol=1e-5, rtol=1e-5)
        assert dense["image_map"].shape == want_map.shape


def test_forward_returns_loss_inputs(tiny_model):
    x1, x2 = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    ids1, mask1 = _tokens(tiny_model, ["left pleural effusion", "no pneumonia"])
    ids2, mask2 = _tokens(tiny_model, ["mild cardiomegaly", "lungs are clear"])
    with torch.no_grad():
        out = tiny_model(x1, ids1, mask1, images_view2=x2, input_ids_section2=ids2, attention_mask_section2=mask2)
        assert set(out) == {"image_emb", "image_emb_view2", "text_emb", "text_emb_section2", "logit_scale"}
        torch.testing.assert_close(out["image_emb_view2"], tiny_model.encode_image(x2), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out["text_emb_section2"], tiny_model.encode_text(ids2, mask2))
    assert out["logit_scale"].item() == pytest.approx(1 / 0.07, rel=1e-5)
    single = tiny_model(x1, ids1, mask1)
    assert set(single) == {"image_emb", "text_emb", "logit_scale"}


def test_forward_feeds_the_project_loss(tiny_model):
    losses = pytest.importorskip("cxrclip.losses")
    x = torch.randn(2, 3, 64, 64)
    ids, mask = _tokens(tiny_model, ["left pleural effusion", "no pneumonia"])
    tiny_model.train()
    out = tiny_model(x, ids, mask, images_view2=x.flip(-1), input_ids_section2=ids, attention_mask_section2=mask)
    result = losses.CXRClipLoss()(**out)
    total = result["total"] if isinstance(result, dict) else result.total
    total.backward()
    assert torch.isfinite(total) and tiny_model.logit_scale.grad is not None


def test_logit_scale_init_and_mlp_head(tiny_config):
    config = tiny_config(projection=ProjectionConfig(kind="mlp", dim=64), logit_scale_init=math.log(10.0))
    model = CXRClip(config).eval()
    assert model.logit_scale.item() == pytest.approx(math.log(10.0))
    keys = {k for k in model.state_dict() if k.startswith("image_projection.")}
    assert keys == {"image_projection.projection.weight", "image_projection.projection.bias",
                    "image_projection.fc.weight", "image_projection.fc.bias",
                    "image_projection.layer_norm.weight", "image_projection.layer_norm.bias"}
    with torch.no_grad():
        assert model.encode_image(torch.randn(2, 3, 64, 64)).shape == (2, 64)


def test_model_accepts_plain_dict_config(tinybert_dir):
    model = CXRClip({"image": {"name": "resnet18", "image_size": 64}, "text": {"path": str(tinybert_dir)},
                     "projection": {"dim": 16}})
    assert model.embed_dim == 16 and model.config.image.name == "resnet18"


def test_text_gradient_checkpointing_keeps_gradients(tiny_config, tinybert_dir):
    torch.manual_seed(0)
    plain = CXRClip(tiny_config())
    config = tiny_config()
    config.text.gradient_checkpointing = True
    ckpt = CXRClip(config)
    ckpt.load_state_dict(plain.state_dict())
    assert any(getattr(m, "gradient_checkpointing", False) for m in ckpt.text_encoder.modules())
    tokenizer = load_tokenizer(tinybert_dir)
    batch = tokenizer(["left pleural effusion", "no pneumonia"], padding=True, return_tensors="pt")
    grads = []
    for model in (plain, ckpt):
        model.train()
        torch.manual_seed(1)  # same dropout masks
        model.encode_text(batch["input_ids"], batch["attention_mask"]).sum().backward()
        grads.append(model.text_projection.projection.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_swin_gradient_checkpointing_flag(tiny_config):
    config = tiny_config("swin_tiny", image_size=64)
    config.image.options = {"embed_dim": 8, "depths": [1, 1], "num_heads": [1, 2], "window_size": 4}
    config.image.gradient_checkpointing = True
    model = CXRClip(config).train()
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.image_encoder.modules())
    model.encode_image(torch.randn(2, 3, 64, 64)).sum().backward()
    assert model.image_encoder.image_encoder.embeddings.patch_embeddings.projection.weight.grad is not None
