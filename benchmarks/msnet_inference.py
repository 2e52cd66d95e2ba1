"""MSNet inference speed: seconds per frame at 800 px short side, hierarchical vs plain RPN.

    python -m benchmarks.msnet_inference [--size 800] [--repeat 2] [--threads N]

Random-initialised weights (speed does not depend on them, except through the number of
detections reaching the mask head, which is printed). The frame is the real xBD joplin tile
resized to --size when ../shared/data is present, random pixels otherwise. "detect" is
backbone + RPN(s) + box/mask heads + paste-back; "SRN + refine" adds the SRN on P2–P5, the
RoIAlign of every detection and the score refinement against one adjacent frame.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.common import machine_header, print_table, shared, timeit
from damagemap.video.config import VideoRecipe
from damagemap.video.model import build_msnet
from damagemap.video.refine import refine_scores, roi_embeddings


def _frame(size: int) -> tuple[torch.Tensor, str]:
    print(machine_header())
    path = shared("xbd", "images") / "joplin-tornado_00000000_post_disaster.png"
    if path.is_file():
        from PIL import Image

        image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy()).float() / 255, "xBD joplin tile"
    return torch.rand(3, size, size, generator=torch.Generator().manual_seed(0)), "random pixels"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=800)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    frame, source = _frame(args.size)
    rows = []
    for rpn in ("hierarchical", "single"):
        torch.manual_seed(0)
        recipe = VideoRecipe.model_validate({"name": rpn, "model": {"rpn": rpn, "min_size": args.size}})
        model = build_msnet(recipe).eval()

        def detect(model=model):
            return model.detect([frame])

        def detect_refine(model=model, recipe=recipe):
            dets, feats, boxes = model.detect([frame])
            with torch.no_grad():
                srn = model.srn({k: v for k, v in feats.items() if k != "pool"})
                size = (feats["0"].shape[-2] * 4, feats["0"].shape[-1] * 4)
                emb = roi_embeddings(srn, boxes[0], size)
            s = dets[0]["scores"]
            return refine_scores([s, s], [emb, emb], recipe.refine.c0, recipe.refine.c1)

        n_det = len(detect()[0][0]["scores"])
        t_detect = timeit(detect, repeat=args.repeat)
        t_full = timeit(detect_refine, repeat=args.repeat, warmup=0)
        rows.append([rpn, f"{args.size}x{args.size}", n_det, t_detect, t_full, 1 / t_full])
    print_table(
        f"MSNet inference on CPU ({args.threads} threads, {source}, best of {args.repeat})",
        ["RPN", "frame", "detections", "detect s/frame", "detect + SRN + refine s/frame", "frames/s"],
        rows,
    )


if __name__ == "__main__":
    main()
