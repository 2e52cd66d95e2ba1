"""Evaluation protocols: stratified k-fold, LODO, SSDC and few-shot splits over domains."""

from damagemap.protocols.splits import (
    Fold,
    fewshot_folds,
    kfold_folds,
    lodo_folds,
    ssdc_folds,
    stratified_kfold,
)

__all__ = ["Fold", "fewshot_folds", "kfold_folds", "lodo_folds", "ssdc_folds", "stratified_kfold"]
