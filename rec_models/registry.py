"""Model names → model classes and their default hyper-parameters.

    @register('din')                      # the class's own constructor defaults
    @register('base_model', pooling='sum')   # the same class under another name, with other defaults
    class DIN(RankingModel): ...

    model = build('din', inputs, {'hidden_units': (64, 32)}, frequencies=counts)

A model's hyper-parameters are the keyword parameters of its constructor and of its bases' constructors within
``rec_models`` (``inputs`` and ``frequencies`` excepted). ``validate`` rejects an unknown name or hyper-parameter
before any work is done. This module imports TensorFlow only when a model is first looked up: the model modules
listed in ``MODEL_MODULES`` are imported then, and they register themselves.
"""

import importlib
import inspect

MODEL_MODULES = ('rec_models.afm', 'rec_models.atrank', 'rec_models.autoint', 'rec_models.bst', 'rec_models.dcn',
                 'rec_models.deepffm', 'rec_models.deepfm', 'rec_models.deepmcp', 'rec_models.dien', 'rec_models.din',
                 'rec_models.dmin', 'rec_models.dmr', 'rec_models.dsin', 'rec_models.dstn', 'rec_models.dupn',
                 'rec_models.ffm', 'rec_models.fm', 'rec_models.fnn', 'rec_models.lr', 'rec_models.nfm',
                 'rec_models.pnn', 'rec_models.poly2', 'rec_models.transfm', 'rec_models.wide_deep')
_NOT_HPARAMS = ('self', 'inputs', 'frequencies')

_registry = {}


def register(name, **default_hparams):
    """Class decorator: registers the class under ``name`` with ``default_hparams`` over its own defaults."""
    def decorate(cls):
        if name in _registry:
            raise ValueError(f'model {name!r} is already registered (by {_registry[name][0].__name__})')
        _check_hparams(name, cls, default_hparams)
        _registry[name] = (cls, dict(default_hparams))
        return cls
    return decorate


def _load():
    for module in MODEL_MODULES:
        importlib.import_module(module)


def names():
    """The registered model names, sorted."""
    _load()
    return sorted(_registry)


def get(name):
    """``(model class, default hyper-parameters)`` of a registered model."""
    _load()
    if name not in _registry:
        raise ValueError(f'unknown model {name!r}; registered models are {sorted(_registry)}')
    cls, defaults = _registry[name]
    return cls, dict(defaults)


def hparam_names(cls):
    """The hyper-parameters a model class accepts: keyword parameters of its ``rec_models`` constructors."""
    accepted = set()
    for klass in cls.__mro__:
        if '__init__' in vars(klass) and klass.__module__.startswith('rec_models'):
            for parameter in inspect.signature(klass.__init__).parameters.values():
                if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                    accepted.add(parameter.name)
    return sorted(accepted - set(_NOT_HPARAMS))


def _check_hparams(name, cls, hparams):
    unknown = sorted(set(hparams) - set(hparam_names(cls)))
    if unknown:
        raise ValueError(f'unknown hyper-parameter(s) {unknown} for model {name!r}; '
                         f'accepted are {hparam_names(cls)}')


def validate(name, hparams=None):
    """The hyper-parameters ``name`` would be built with (defaults overridden by ``hparams``).

    Raises ValueError for an unknown model name, an unknown hyper-parameter or a value the model rejects
    (``cls.check_hparams``).
    """
    cls, merged = get(name)
    _check_hparams(name, cls, hparams or {})
    merged.update(hparams or {})
    cls.check_hparams(merged)
    return merged


def build(name, inputs, hparams=None, frequencies=None):
    """Constructs model ``name`` from a :class:`ModelInputs`; ``frequencies`` feed the mini-batch-aware L2."""
    cls, _ = get(name)
    return cls(inputs, frequencies=frequencies, **validate(name, hparams))
