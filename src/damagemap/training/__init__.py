"""Training: the fit loop and its feature sources, training items, the feature cache, metrics, few-shot LoRA."""
