"""The feature-interaction family: LR, POLY2, FM, FFM, FNN, PNN, Wide&Deep, DCN, NFM, AFM, AutoInt, DeepFM,
DeepFFM / FAT-DeepFFM and TransFM, one model a module named after its paper. They read the flat fields (and, with
``use_behavior``, the behaviour sequences as multi-valued fields)."""
