"""One dependency direction: ``feature_spec`` ← ``rec_models`` ← ``tfx_pipeline``; ``serving`` imports neither
``rec_models`` nor ``tfx_pipeline`` (a server needs TensorFlow and the SavedModel, not the zoo or the pipeline).

Read from the source with ``ast``: every ``import`` and ``from … import`` of every module, at any depth (an
import inside a function is a dependency too).
"""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ('feature_spec', 'rec_models', 'tfx_pipeline', 'serving')
# The project packages each package may import (itself aside).
ALLOWED = {
    'feature_spec': set(),
    'rec_models': {'feature_spec'},
    'serving': {'feature_spec'},
    'tfx_pipeline': {'feature_spec', 'rec_models', 'serving'},
}


def imported_packages(path: str) -> dict:
    """``{project package: first line importing it}`` of the module at ``path``."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split('.')[0]
            if top in PACKAGES:
                found.setdefault(top, node.lineno)
    return found


def modules(package: str):
    for root, _, files in os.walk(os.path.join(REPO, package)):
        for name in sorted(files):
            if name.endswith('.py'):
                yield os.path.join(root, name)


@pytest.mark.parametrize('package', PACKAGES)
def test_package_imports_only_what_the_direction_allows(package):
    wrong = []
    for path in modules(package):
        for imported, line in imported_packages(path).items():
            if imported != package and imported not in ALLOWED[package]:
                wrong.append(f'{os.path.relpath(path, REPO)}:{line} imports {imported}')
    assert not wrong, '\n'.join(wrong)


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / 'm.py'
    module.write_text('import os\n\ndef f():\n    from tfx_pipeline import config\n    import rec_models.registry\n')
    assert imported_packages(str(module)) == {'tfx_pipeline': 4, 'rec_models': 5}
