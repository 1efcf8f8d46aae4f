"""Tests for repro.models.resnet: torchvision-exact layout, shapes, options and equivalence."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from repro.models import resnet as R

# torchvision's published parameter counts (model docs / weights metadata "num_params").
TORCHVISION_NUM_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
STAGES = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
}


def expected_layout(kind: str, layers: list[int], num_classes: int = 1000) -> dict[str, list[int]]:
    """State-dict keys -> shapes, written down from torchvision's layout rules (not from our code)."""
    out: dict[str, list[int]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.{name}"] = [c]
        out[f"{prefix}.num_batches_tracked"] = []

    out["conv1.weight"] = [64, 3, 7, 7]
    bn("bn1", 64)
    expansion = 4 if kind == "bottleneck" else 1
    inplanes = 64
    for stage, (n_blocks, planes) in enumerate(zip(layers, [64, 128, 256, 512], strict=True), start=1):
        for i in range(n_blocks):
            p = f"layer{stage}.{i}"
            if kind == "bottleneck":
                out[f"{p}.conv1.weight"] = [planes, inplanes, 1, 1]
                bn(f"{p}.bn1", planes)
                out[f"{p}.conv2.weight"] = [planes, planes, 3, 3]
                bn(f"{p}.bn2", planes)
                out[f"{p}.conv3.weight"] = [planes * 4, planes, 1, 1]
                bn(f"{p}.bn3", planes * 4)
            else:
                out[f"{p}.conv1.weight"] = [planes, inplanes, 3, 3]
                bn(f"{p}.bn1", planes)
                out[f"{p}.conv2.weight"] = [planes, planes, 3, 3]
                bn(f"{p}.bn2", planes)
            # Projection shortcut only on the first block of a stage whose stride or width changes.
            if i == 0 and (stage > 1 or inplanes != planes * expansion):
                out[f"{p}.downsample.0.weight"] = [planes * expansion, inplanes, 1, 1]
                bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    out["fc.weight"] = [num_classes, 512 * expansion]
    out["fc.bias"] = [num_classes]
    return out


def shapes(model: nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def build(name: str, seed: int = 0, **kw: object) -> R.ResNet:
    torch.manual_seed(seed)
    return getattr(R, name)(**kw)


@pytest.mark.parametrize("name", list(TORCHVISION_NUM_PARAMS))
def test_param_counts_match_torchvision(name: str) -> None:
    with torch.device("meta"):
        model = getattr(R, name)()
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_NUM_PARAMS[name]


@pytest.mark.parametrize("name", list(STAGES))
def test_state_dict_layout_matches_rules(name: str) -> None:
    with torch.device("meta"):
        model = getattr(R, name)()
    assert shapes(model) == expected_layout(*STAGES[name])


def test_resnet50_state_dict_spot_checks() -> None:
    with torch.device("meta"):
        sd = R.resnet50().state_dict()
    # 6 (stem) + 16 bottlenecks * 18 (3 convs + 3 BNs of 5 entries) + 4 projections * 6 + 2 (fc) = 320.
    assert len(sd) == 6 + 16 * 18 + 4 * 6 + 2 == 320
    assert list(sd["layer1.0.downsample.0.weight"].shape) == [256, 64, 1, 1]
    assert list(sd["layer1.0.downsample.1.running_var"].shape) == [256]
    assert list(sd["layer2.0.conv2.weight"].shape) == [128, 128, 3, 3]
    assert list(sd["layer4.2.conv3.weight"].shape) == [2048, 512, 1, 1]
    assert list(sd["fc.weight"].shape) == [1000, 2048]
    assert "bn1.num_batches_tracked" in sd
    assert sd["bn1.num_batches_tracked"].dtype == torch.long
    assert "layer1.1.downsample.0.weight" not in sd
    assert next(iter(sd)) == "conv1.weight" and list(sd)[-2:] == ["fc.weight", "fc.bias"]


def test_v15_stride_on_conv2_and_module_tree() -> None:
    with torch.device("meta"):
        model = R.resnet50()
    block = model.layer2[0]
    assert isinstance(block, R.Bottleneck)
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2) and block.stride == 2
    assert [n for n, _ in block.named_children()] == "conv1 bn1 conv2 bn2 conv3 bn3 relu downsample".split()
    assert [n for n, _ in model.named_children()] == (
        "conv1 bn1 relu maxpool layer1 layer2 layer3 layer4 avgpool fc".split()
    )
    stem = model.conv1
    assert (
        stem.kernel_size == (7, 7) and stem.stride == (2, 2) and stem.padding == (3, 3) and stem.bias is None
    )
    assert isinstance(model.maxpool, nn.MaxPool2d)
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)
    with torch.device("meta"):
        basic = R.resnet18()
    assert [n for n, _ in basic.layer2[0].named_children()] == "conv1 bn1 relu conv2 bn2 downsample".split()
    assert basic.layer1[0].downsample is None and basic.layer2[0].conv1.stride == (2, 2)


def test_small_input_changes_only_conv1_shape() -> None:
    with torch.device("meta"):
        ref, small = shapes(R.resnet50()), shapes(R.resnet50(small_input=True))
    assert ref.keys() == small.keys()
    assert [k for k in ref if ref[k] != small[k]] == ["conv1.weight"]
    assert small["conv1.weight"] == [64, 3, 3, 3]


def test_init_matches_torchvision_rules() -> None:
    model = build("resnet18")
    conv = model.layer3[1].conv2
    fan_out = conv.out_channels * 3 * 3
    assert conv.weight.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.05)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    z50 = build("resnet50", zero_init_residual=True)
    assert all(torch.all(b.bn3.weight == 0) for b in z50.modules() if isinstance(b, R.Bottleneck))
    assert torch.all(z50.bn1.weight == 1)
    z18 = build("resnet18", zero_init_residual=True)
    assert all(torch.all(b.bn2.weight == 0) for b in z18.modules() if isinstance(b, R.BasicBlock))


@torch.no_grad()
def test_forward_shapes_224() -> None:
    model = build("resnet50", num_classes=10).eval()
    x = torch.randn(2, 3, 224, 224)
    assert model(x).shape == (2, 10)
    assert model.forward_features(x).shape == (2, 2048) == (2, model.num_features)


@pytest.mark.parametrize("size", [32, 64])
@torch.no_grad()
def test_forward_shapes_small_input(size: int) -> None:
    model = build("resnet50", num_classes=100, small_input=True).eval()
    x = torch.randn(2, 3, size, size)
    assert model(x).shape == (2, 100)
    assert model.forward_features(x).shape == (2, 2048)
    # Stride-1 stem, no max-pool: layer1 works at full resolution, layer4 at size / 8.
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    assert h.shape[-1] == size
    assert model.layer4(model.layer3(model.layer2(model.layer1(h)))).shape[-1] == size // 8


@pytest.mark.parametrize(
    ("name", "width", "dim"), [("resnet18", 16, 128), ("resnet50", 16, 512), ("resnet34", 8, 64)]
)
@torch.no_grad()
def test_width_option(name: str, width: int, dim: int) -> None:
    model = build(name, num_classes=7, width=width, small_input=True).eval()
    x = torch.randn(3, 3, 32, 32)
    assert model.forward_features(x).shape == (3, dim) and model.num_features == dim
    assert model(x).shape == (3, 7)
    assert model.conv1.weight.shape == (width, 3, 3, 3)


def test_train_step_updates_and_tracks_batches() -> None:
    model = build("resnet18", num_classes=5, width=8, small_input=True).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    before = model.fc.weight.detach().clone()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert not torch.equal(before, model.fc.weight)
    assert model.bn1.num_batches_tracked.item() == 1


@torch.no_grad()
def test_eval_determinism_and_strict_round_trip() -> None:
    a = build("resnet50", seed=1, num_classes=10, small_input=True).eval()
    b = build("resnet50", seed=2, num_classes=10, small_input=True).eval()
    x = torch.randn(2, 3, 32, 32)
    ya = a(x)
    assert torch.equal(ya, a(x))
    assert not torch.allclose(ya, b(x))
    result = b.load_state_dict(a.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(ya, b(x))
    # A default-stem state dict does not load into a small_input model (conv1 shape differs).
    with pytest.raises(RuntimeError, match="conv1.weight"):
        b.load_state_dict(build("resnet50", num_classes=10).state_dict())


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        R.ResNet(R.BasicBlock, [2, 2, 2])
    with pytest.raises(ValueError):
        R.resnet18(width=0)


def test_module_depends_only_on_torch() -> None:
    tree = ast.parse(Path(R.__file__).read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots <= {"__future__", "collections", "typing", "torch"}


# --- equivalence with torchvision (runs only where a working torchvision is installed) ---------------


def _torchvision_models():
    """Import torchvision.models or skip; a broken install may raise RuntimeError/OSError, not ImportError."""
    try:
        import torchvision.models as tvm
    except Exception as exc:  # any failure means "no usable torchvision here"
        pytest.skip(f"torchvision not usable here ({type(exc).__name__}: {str(exc)[:200]})")
    return tvm


@pytest.mark.parametrize("name", ["resnet50", "resnet101"])
@torch.no_grad()
def test_equivalent_to_torchvision(name: str) -> None:
    tvm = _torchvision_models()
    torch.manual_seed(0)
    theirs = getattr(tvm, name)(weights=None).eval()
    ours = build(name, seed=123).eval()
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert shapes(ours) == shapes(theirs)
    assert sum(p.numel() for p in theirs.parameters()) == TORCHVISION_NUM_PARAMS[name]
    ours.load_state_dict(theirs.state_dict(), strict=True)
    # Give BN non-trivial running statistics so the eval-mode comparison exercises them.
    for m_ours, m_theirs in zip(ours.modules(), theirs.modules(), strict=True):
        if isinstance(m_theirs, nn.BatchNorm2d):
            m_theirs.running_mean.uniform_(-0.1, 0.1)
            m_theirs.running_var.uniform_(0.5, 2.0)
            m_ours.load_state_dict(m_theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    theirs.fc = nn.Identity()  # torchvision's penultimate features = its input to fc
    torch.testing.assert_close(ours.forward_features(x), theirs(x), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_same_seed_gives_torchvision_init() -> None:
    tvm = _torchvision_models()
    torch.manual_seed(0)
    theirs = tvm.resnet50(weights=None)
    ours = build("resnet50", seed=0)
    for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
