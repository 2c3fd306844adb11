"""Models by name through the whole pipeline: one ExampleGen … Transform, then a Trainer, an Evaluator and a Pusher
per model. ``pipeline_run`` (make test) runs a few models; ``zoo`` (slow, make test-all) runs every registered model.

For each model: the Evaluator evaluated every head and blessed it (its primary head's test AUC clears a floor set
from measurement), the Pusher wrote it in TF Serving's layout under ``serving/<model>/<version>/``, and the pushed
SavedModel, loaded in a fresh process that never imports this project, gives the Trainer's in-process predictions
of every head on logged test examples (1e-5).
"""

import os

import numpy as np
import pytest

from rec_models import registry
from serving import signatures

from fresh_process import score_in_fresh_process
from zoo_run import AUC_FLOOR

@pytest.fixture(name='run', params=[pytest.param('pipeline_run', marks=pytest.mark.pipeline),
                                    pytest.param('zoo', marks=pytest.mark.slow)])
def fixture_run(request):
    return request.getfixturevalue(request.param)


def test_one_transform_and_a_branch_per_model(run):
    assert run.result.stderr.count('] Transform …') == 1
    for model in run.summaries:
        assert f'] Pusher.{model} done in' in run.result.stderr, model
        assert f'] Trainer.{model} done in' in run.result.stderr, model
    assert 'epoch 1/' in run.result.stderr


def _ranking(run):
    return {model: summary for model, summary in run.summaries.items() if registry.kind(model) == registry.RANKING}


def test_each_model_is_evaluated_blessed_and_pushed(run):
    for model, summary in _ranking(run).items():
        assert AUC_FLOOR < summary['test_auc'] <= summary['bayes_auc'] + 0.03, summary
        assert 0 < summary['logloss'] < 0.6 and summary['gauc'] is not None, summary
        assert 0.5 < summary['relevance_auc'] <= 1, summary   # the click-if-examined draws of the tiny set
        assert 0.3 < summary['csauc'] <= 1 and 0.8 < summary['coec'] < 1.3, summary
        assert summary['blessed'] is True, summary
        pushed = summary['pushed_model']
        assert os.path.dirname(pushed) == str(run.run_dir / 'serving' / model)
        assert os.path.basename(pushed).isdigit() and os.path.exists(os.path.join(pushed, signatures.WARMUP_FILE))
        heads = registry.heads(model)
        if len(heads) > 1:   # every head's figures, a conditioned head's in its condition's slice too
            assert set(summary['heads']) == {h.name for h in heads}, summary
            for head in heads:
                assert 0 < summary['heads'][head.name]['auc'] < 1, (head, summary)
                if head.condition:
                    assert f'auc_given_{head.condition}' in summary['heads'][head.name], summary


def test_every_pushed_model_serves_the_trainers_scores_in_a_fresh_process(run):
    samples = {model: run.sample(model, head=None) for model in _ranking(run)}
    fresh = score_in_fresh_process({run.pushed(m): samples[m][0][:64] for m in samples}, str(run.tmp_path),
                                   outputs=True)
    for model, (_, expected) in samples.items():
        served = fresh[run.pushed(model)]
        assert set(served) == set(expected) == {signatures.PROBABILITIES} | {
            h.name for h in registry.heads(model) if h.name}, model
        for name, values in expected.items():
            np.testing.assert_allclose(served[name], values[:64], atol=1e-5, rtol=0, err_msg=f'{model} {name}')
        assert np.std(served[signatures.PROBABILITIES]) > 1e-3, model  # not a constant


@pytest.mark.slow
def test_the_zoo_runs_every_registered_model(zoo):
    assert sorted(zoo.summaries) == registry.names()
