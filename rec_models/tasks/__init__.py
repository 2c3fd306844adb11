"""Tasks: what a model is trained on, what it reports and what it serves, one concept a module (in the spirit of
TensorFlow Recommenders' tasks). A model is towers plus tasks: :class:`rec_models.base.RankingModel` sums the
tasks' weighted losses, updates their metrics and adds their served outputs.

* :mod:`.base`: ``Task``, the ``Head`` a model serves, label helpers.
* :mod:`.binary`: ``BinaryTask``, a head's log loss and AUC (every click head).
* :mod:`.product`: ``ProductTask``, a product of heads trained on its own label (ESMM, ESM2, PAL).
* :mod:`.auxiliary`: ``AuxiliaryLoss``, a weighted loss the model computes itself (DIEN, DMR, DMIN, DeepMCP).
* :mod:`.distillation`: ``DistillationTask``, a student trained from the labels and a teacher's soft labels.
* :mod:`.regression`: ``RegressionTask``, squared error against a label or another output.
* :mod:`.covariance`: ``CovariancePenalty``, the squared mini-batch covariance of two outputs (adversarial bias net).
"""

from rec_models.tasks.auxiliary import AUX_LOSS, AuxiliaryLoss
from rec_models.tasks.base import LOGITS, PROBABILITIES, Head, Task
from rec_models.tasks.binary import BinaryTask, logits_key
from rec_models.tasks.covariance import CovariancePenalty, covariance
from rec_models.tasks.distillation import DistillationTask
from rec_models.tasks.product import ProductTask
from rec_models.tasks.regression import RegressionTask

__all__ = ['AUX_LOSS', 'AuxiliaryLoss', 'BinaryTask', 'CovariancePenalty', 'DistillationTask', 'Head', 'LOGITS',
           'PROBABILITIES', 'ProductTask', 'RegressionTask', 'Task', 'covariance', 'logits_key']
