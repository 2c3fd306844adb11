"""The multi-task and position-debiasing family: shared-bottom, OMoE and MMoE, ESMM and ESM2, YouTube's ranker
with its shallow position tower, PAL, the adversarial bias net and privileged-feature distillation."""
