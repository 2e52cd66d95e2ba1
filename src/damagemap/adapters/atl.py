"""Adaptive Transfer Learning (ATL) modules for timm ViT encoders (TransLandSeg, docs/methods.md §2).

Two forms, attached to the ViT inside a :class:`~damagemap.encoders.vit.ViTEncoder` with
forward hooks (timm's model code is not copied):

* ``placement="prompt"`` — the explicit-visual-prompt generator of the reference code
  (JunchuanYu/TransLandSeg, ``models/mmseg/models/sam/image_encoder.py``: ``PromptGenerator``,
  ``ImageEncoderViT.forward``). An embedding path ``Linear(C→C/r)`` on the patch tokens before
  the position embedding (a hook on ``patch_embed``) plus a handcrafted path: FFT high-pass of
  the input image (:func:`fft_highpass`) → ``Conv2d(bands→C/r, k=p, s=p)``. For block i:
  ``prompt_i = Linear_shared(C/r→C)(GELU(Linear_i(C/r→C/r)(emb + hand)))``.
* ``placement="block"`` — an adapter on each block's attention output (a hook on
  ``blocks[i].attn``; the reference's ``Adapter`` in ``image_encoder2.py``, called on the
  attention output inside the block): ``a ← a + up(GELU(down(a)))`` (residual on) or
  ``a ← up(GELU(down(a)))`` (residual off, the reference's ``skip_connect=False``), ``down: C→C/r``,
  ``up: C/r→C``. The block's own shortcut (``x + attn(…)``) is untouched either way.

"Residual" is the ATL module's skip connection, and in both forms it never cuts the encoder's
own residual stream — so every earlier block always reaches the output:

* prompt, residual on (the reference): ``x_{i+1} = block_i(x_i + prompt_i)`` — the prompt enters
  the token stream and travels on through every later block's shortcut;
* prompt, residual off: ``x_{i+1} = block_i(x_i + prompt_i) − prompt_i`` — the prompt conditions
  block i's attention and MLP but is not added to the stream's shortcut path (the in-block analogue
  of the reference adapter's ``skip_connect=False``: ATL output replaces what it is attached to
  inside the block, the encoder's shortcut keeps ``x_i``). The reference code has no switch for
  this form; replacing the stream (``x ← prompt_i``) would discard every earlier block.

Prefix tokens (class / register) of DINO models are left untouched. Weights start as in the
reference code: Linear truncated normal σ = 0.02 with zero bias; the handcrafted conv normal with
σ = √(2 / fan_out), zero bias.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from damagemap.encoders.base import Encoder
from damagemap.errors import ConfigError

PLACEMENTS = ("prompt", "block")


def highpass_mask(h: int, w: int, rate: float, device: torch.device | None = None) -> torch.Tensor:
    """``[h, w]`` mask of the shifted spectrum: 0 on the centred low-frequency square, 1 elsewhere.

    As the reference (``PromptGenerator.fft``): half-side ``int(√(h·w·rate) // 2)``, so the square
    covers ``rate`` of the spectrum's area (a quarter at rate 0.25, up to integer rounding).
    """
    half = int((h * w * rate) ** 0.5 // 2)
    mask = torch.ones(h, w, device=device)
    mask[h // 2 - half : h // 2 + half, w // 2 - half : w // 2 + half] = 0
    return mask


def fft_highpass(x: torch.Tensor, rate: float = 0.25) -> torch.Tensor:
    """``|Re iFFT|`` of ``x`` ``[B, C, H, W]`` with the low-frequency square removed (:func:`highpass_mask`).

    As the reference: ``fftshift(fft2(x, norm="forward"))``, masked, ``ifftshift``, ``ifft2``,
    real part, absolute value. A constant image maps to zero.
    """
    h, w = x.shape[-2:]
    spectrum = torch.fft.fftshift(torch.fft.fft2(x.float(), norm="forward"), dim=(-2, -1))
    spectrum = torch.fft.ifftshift(spectrum * highpass_mask(h, w, rate, x.device), dim=(-2, -1))
    return torch.fft.ifft2(spectrum, norm="forward").real.abs().to(x.dtype)


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, W, C]`` or ``[B, N, C]`` → ``[B, N, C]``."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def _add_to_patches(x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
    """``x`` (``[B, H, W, C]`` or ``[B, N, C]``) with ``prompt`` ``[B, n, C]`` added to its patch tokens.

    The patch tokens are the last n; DINO's prefix (class / register) tokens come first and are
    left alone.
    """
    n = prompt.shape[1]
    flat = _tokens(x)
    patches = flat[:, -n:] + prompt.to(flat.dtype)
    if flat.shape[1] > n:
        patches = torch.cat([flat[:, :-n], patches], dim=1)
    return patches.reshape(x.shape)


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class PromptGenerator(nn.Module):
    """Embedding + handcrafted (FFT) paths → one prompt per block (see module docstring)."""

    def __init__(self, dim: int, depth: int, in_chans: int, patch: int, reduction: int, rate: float) -> None:
        super().__init__()
        hidden = max(1, dim // reduction)
        self.rate = rate
        self.embedding = nn.Linear(dim, hidden)
        self.handcrafted = nn.Conv2d(in_chans, hidden, kernel_size=patch, stride=patch)
        self.tuning = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.shared_up = nn.Linear(hidden, dim)
        _init(self)

    def forward(self, image: torch.Tensor, patch_tokens: torch.Tensor) -> list[torch.Tensor]:
        """Prompts ``[B, N, C]`` for every block from the input image and the patch tokens."""
        hand = self.handcrafted(fft_highpass(image, self.rate)).flatten(2).transpose(1, 2)
        base = self.embedding(_tokens(patch_tokens)) + hand
        return [self.shared_up(F.gelu(tune(base))) for tune in self.tuning]


class BlockAdapter(nn.Module):
    """Bottleneck ``Linear(C→C/r) → GELU → Linear(C/r→C)`` with an optional skip connection."""

    def __init__(self, dim: int, reduction: int, residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.down = nn.Linear(dim, max(1, dim // reduction))
        self.up = nn.Linear(max(1, dim // reduction), dim)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck output, added to ``x`` when the skip connection is on."""
        out = self.up(F.gelu(self.down(x)))
        return x + out if self.residual else out


class ATL(nn.Module):
    """ATL modules for one timm ViT; :meth:`attach` installs the hooks on ``vit``.

    Args:
        dim: token width C; depth: number of blocks; in_chans: image bands; patch: patch size.
        placement: ``"prompt"`` (before every block) or ``"block"`` (after attention).
        residual: the ATL skip connection (see module docstring).
        prompt_reduction: C / hidden width of the prompt generator (32 in the paper).
        adapter_reduction: C / bottleneck width of the in-block adapter (4 in the paper).
        fft_rate: share of the spectrum's area removed by the high-pass (0.25 in the reference).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        in_chans: int,
        patch: int,
        placement: str = "prompt",
        residual: bool = True,
        prompt_reduction: int = 32,
        adapter_reduction: int = 4,
        fft_rate: float = 0.25,
    ) -> None:
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"ATL placement must be one of {PLACEMENTS}, got {placement!r}")
        self.placement, self.residual = placement, residual
        self.options: dict[str, Any] = {
            "placement": placement,
            "residual": residual,
            "prompt_reduction": prompt_reduction,
            "adapter_reduction": adapter_reduction,
            "fft_rate": fft_rate,
        }
        # the configuration is part of the weights hash (encoder fingerprint → feature cache key)
        self.register_buffer(
            "spec",
            torch.tensor(
                [PLACEMENTS.index(placement), float(residual), prompt_reduction, adapter_reduction, fft_rate],
                dtype=torch.float64,
            ),
        )
        if placement == "prompt":
            self.prompt = PromptGenerator(dim, depth, in_chans, patch, prompt_reduction, fft_rate)
        else:
            self.adapters = nn.ModuleList(BlockAdapter(dim, adapter_reduction, residual) for _ in range(depth))
        self._prompts: list[torch.Tensor] | None = None
        self._pending: torch.Tensor | None = None
        self._handles: list[Any] = []

    # -- hooks ----------------------------------------------------------------------------------
    def _on_patch_embed(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self._prompts = self.prompt(args[0], output)

    # hooks are bound methods (wrapped in partial), so ``copy.deepcopy(encoder)`` re-targets them
    # at the copied ATL instead of leaving closures that point at the original
    def _before_block(self, index: int, module: nn.Module, args: tuple, kwargs: dict):
        if self._prompts is None:
            raise RuntimeError("ATL prompts missing: the patch embedding did not run before the blocks")
        x = args[0]
        prompt = self._prompts[index]
        if not self.residual:
            self._pending = prompt  # taken off the block's output again (see _after_block)
        if index == len(self._prompts) - 1:
            self._prompts = None  # drop the reference once the last block has its prompt
        return (_add_to_patches(x, prompt), *args[1:]), kwargs

    def _after_block(self, index: int, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        prompt, self._pending = self._pending, None
        if prompt is None:
            raise RuntimeError("ATL prompt missing after a block (residual off)")
        return _add_to_patches(output, -prompt)

    def _after_attention(self, index: int, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return self.adapters[index](output)

    def attach(self, vit: nn.Module) -> ATL:
        """Install the hooks on ``vit`` (a timm ViT with ``patch_embed`` and ``blocks``)."""
        self.detach()
        blocks = list(vit.get_submodule("blocks").children())
        if self.placement == "prompt":
            self._handles.append(vit.get_submodule("patch_embed").register_forward_hook(self._on_patch_embed))
            for i, block in enumerate(blocks):
                self._handles.append(block.register_forward_pre_hook(partial(self._before_block, i), with_kwargs=True))
                if not self.residual:
                    self._handles.append(block.register_forward_hook(partial(self._after_block, i)))
        else:
            for i, block in enumerate(blocks):
                hook = partial(self._after_attention, i)
                self._handles.append(block.get_submodule("attn").register_forward_hook(hook))
        return self

    def detach(self) -> None:
        """Remove the hooks (the modules and their weights stay)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def apply_atl(encoder: Encoder, options: dict) -> None:
    """Adapter kind ``atl``: add trainable ATL modules (``encoder.atl``) hooked into the ViT.

    ``options`` are :class:`ATL` keyword arguments (placement, residual, prompt_reduction,
    adapter_reduction, fft_rate).
    """
    vit = getattr(encoder, "model", None)
    if vit is None or not hasattr(vit, "patch_embed") or not hasattr(vit, "blocks"):
        raise ConfigError(f"ATL needs a ViT encoder (SAM, DINOv2, DINOv3); {encoder.name} is not one")
    if hasattr(encoder, "atl"):
        raise ConfigError(f"encoder {encoder.name} already has ATL modules")
    patch = vit.patch_embed.patch_size
    patch = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
    try:
        atl = ATL(int(vit.embed_dim), len(vit.blocks), encoder.in_chans, patch, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid ATL options {options}: {exc}") from None
    encoder.atl = atl.attach(vit)  # registered as a submodule: in parameters() and state_dict()
