"""Drone-frame damage instance segmentation (MSNet): hierarchical RPN, score refinement, video input."""
