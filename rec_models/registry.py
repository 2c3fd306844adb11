"""Model names → model classes and their default hyper-parameters.

    @register('din')                      # the class's own constructor defaults
    @register('base_model', pooling='sum')   # the same class under another name, with other defaults
    class DIN(RankingModel): ...

    model = build('din', inputs, {'hidden_units': (64, 32)}, frequencies=counts)

A model's hyper-parameters are the keyword parameters of its constructor and of its bases' constructors within
``rec_models`` (``inputs`` and ``frequencies`` excepted). ``validate`` rejects an unknown name or hyper-parameter
before any work is done. This module imports TensorFlow only when a model is first looked up: then every module of
the family packages (:data:`FAMILIES`, one package a family) is imported, and the models register themselves; no
list of model modules is kept by hand.
"""

import importlib
import inspect
import pkgutil

# The family packages of ``rec_models``: every module in them is imported when a model is first looked up.
FAMILIES = ('interaction', 'sequence', 'multitask', 'retrieval')
_NOT_HPARAMS = ('self', 'inputs', 'frequencies')
RANKING = 'ranking'
RETRIEVAL = 'retrieval'

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
    for family_name in FAMILIES:
        package = importlib.import_module(f'{__package__}.{family_name}')
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f'{package.__name__}.{module.name}')


def family(name) -> str:
    """The family (package under ``rec_models``) of registered model ``name``: ``'interaction'``, …"""
    return get(name)[0].__module__.split('.')[1]


def names_by_family():
    """``{family: [registered names, sorted]}`` for every family, in :data:`FAMILIES` order."""
    grouped = {f: [] for f in FAMILIES}
    for name in names():
        grouped[family(name)].append(name)
    return grouped


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


def kind(name) -> str:
    """``'ranking'`` or ``'retrieval'``: what model ``name`` does (its class's ``KIND``)."""
    return getattr(get(name)[0], 'KIND', RANKING)


def names_of_kind(model_kind: str):
    """The registered names of one :func:`kind`, sorted."""
    return [name for name in names() if kind(name) == model_kind]


def heads(name, hparams=None):
    """The heads model ``name`` serves with ``hparams`` (its class's ``served_heads``), the primary first; no
    model is built."""
    cls, _ = get(name)
    return cls.served_heads(validate(name, hparams))
