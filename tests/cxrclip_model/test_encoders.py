"""Image-encoder registry and backbones: names, torchvision layout, pooling, feature maps."""
import pytest
import torch
from torch import nn

from cxrclip.registry import create_model, list_models, register_image_encoder


def test_builtin_encoders_are_listed():
    assert {"resnet18", "resnet50", "swin_tiny"} <= set(list_models())


def test_unknown_encoder_lists_available_ones():
    with pytest.raises(ValueError, match=r"unknown image encoder 'vit_huge'; available: \[.*'resnet50'"):
        create_model("vit_huge")


def test_register_custom_encoder():
    @register_image_encoder("test_identity_pool")
    def build(image_size: int = 224, gradient_checkpointing: bool = False) -> nn.Module:
        return nn.Identity()

    assert "test_identity_pool" in list_models()
    assert isinstance(create_model("test_identity_pool"), nn.Identity)


def test_resnet18_has_torchvision_names_and_shapes():
    state = create_model("resnet18").resnet.state_dict()
    # torchvision resnet18 has 122 state entries with fc (2) -> 120 without.
    assert len(state) == 120
    assert not any(k.startswith("fc.") for k in state)
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer1.0.conv2.weight"].shape == (64, 64, 3, 3)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer4.1.bn2.running_var"].shape == (512,)
    assert "layer1.0.conv3.weight" not in state  # BasicBlock


def test_resnet10_slim_is_half_width_one_block_per_stage():
    encoder = create_model("resnet10_slim")
    state = encoder.resnet.state_dict()
    assert encoder.out_dim == 256
    assert state["conv1.weight"].shape == (32, 3, 7, 7)
    assert state["layer2.0.downsample.0.weight"].shape == (64, 32, 1, 1)
    assert state["layer4.0.conv2.weight"].shape == (256, 256, 3, 3)
    assert "layer1.1.conv1.weight" not in state  # one block per stage
    assert encoder(torch.zeros(2, 3, 64, 64)).shape == (2, 256)


def test_resnet50_bottleneck_layout():
    encoder = create_model("resnet50")
    state = encoder.resnet.state_dict()
    assert len(state) == 318  # torchvision resnet50: 320 entries incl. fc.weight/bias
    assert state["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
    assert state["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)  # stride on the 3x3 (v1.5)
    assert encoder.resnet.layer2[0].conv2.stride == (2, 2)
    assert encoder.out_dim == 2048


def test_resnet_global_feature_is_mean_of_feature_map():
    encoder = create_model("resnet18").eval()
    x = torch.randn(2, 3, 64, 96)
    fmap = encoder.feature_map(x)
    assert fmap.shape == (2, 512, 2, 3)
    torch.testing.assert_close(encoder(x), fmap.mean(dim=(2, 3)))


def test_resnet_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    plain = create_model("resnet18")
    ckpt = create_model("resnet18", gradient_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    plain(x).sum().backward()
    grad_plain = x.grad.clone()
    x.grad = None
    ckpt(x).sum().backward()
    torch.testing.assert_close(x.grad, grad_plain)


def test_resnet_loads_torchvision_style_weights(tmp_path):
    source = create_model("resnet18")
    state = dict(source.resnet.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    torch.save(state, tmp_path / "resnet18.pth")
    loaded = create_model("resnet18", weights=str(tmp_path / "resnet18.pth"))
    torch.testing.assert_close(loaded.resnet.conv1.weight, source.resnet.conv1.weight)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        create_model("resnet18", weights=str(tmp_path / "missing.pth"))


def test_swin_first_token_and_patch_grid():
    encoder = create_model("swin_tiny", image_size=64, embed_dim=8, depths=[1, 1], num_heads=[1, 2],
                           window_size=4).eval()
    x = torch.randn(2, 3, 64, 64)
    tokens = encoder.tokens(x)
    assert tokens.shape == (2, 64, 16)  # 64/4 = 16 -> one merge -> 8x8 tokens of width 16
    torch.testing.assert_close(encoder(x), tokens[:, 0])
    fmap = encoder.feature_map(x)
    assert fmap.shape == (2, 16, 8, 8)
    torch.testing.assert_close(fmap[:, :, 0, 1], tokens[:, 1])  # row-major token order
    torch.testing.assert_close(fmap[:, :, 1, 0], tokens[:, 8])


def test_swin_too_small_input_is_explained():
    encoder = create_model("swin_tiny", depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], embed_dim=8)
    with pytest.raises(ValueError, match=r"Swin input 128x224 is too small: each side must be >= 224 px"):
        encoder(torch.zeros(1, 3, 128, 224))


def test_swin_rejects_unknown_option():
    with pytest.raises(ValueError, match="unknown Swin option 'depth'"):
        create_model("swin_tiny", depth=3)
