"""The behaviour-sequence family: DIN and its base model, DIEN, DSIN, BST, DMR, DMIN, DeepMCP, ATRank, DUPN and
DSTN, on the shared base of :mod:`rec_models.sequence.behavior`, one model a module named after its paper."""
