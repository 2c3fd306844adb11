"""Spec parsing: the shipped spec loads, and every kind of mistake is rejected with the field named."""

import copy

import pytest
import yaml

from feature_spec import spec as spec_lib

SPEC_PATH = 'feature_spec/specs/synthetic.yaml'


@pytest.fixture(name='raw_spec')
def fixture_raw_spec():
    with open(SPEC_PATH) as f:
        return yaml.safe_load(f)


def test_shipped_spec_loads_with_shared_vocabularies():
    spec = spec_lib.load(SPEC_PATH)
    assert spec['hist_item_id'].vocabulary == spec['item_id'].vocabulary == 'item_id'
    assert spec.embedding_dim(spec['hist_item_id']) == spec.embedding_dim(spec['item_id'])
    assert spec.labels[0] == 'click'
    serving = spec.serving_columns
    for never_served in ('click', 'position', 'page_dwell', 'satisfied', 'bid', 'true_ctr', 'click_if_examined',
                         'impression_id'):
        assert never_served not in serving
    assert [c.name for c in spec.columns if c.training_only] == ['position', 'page_dwell']
    assert spec.label_for('conversion') == 'purchase' and spec.label_for('click') == 'click'
    assert spec.request_group == 'request_id' and spec.negative_sampling_rate == 1.0
    with pytest.raises(spec_lib.SpecError, match='label_roles.dwell'):
        spec.label_for('dwell')
    assert 'request_time' in serving  # the reference of the time gaps is needed at serving time
    assert 'hist_time' in serving
    crosses = {c.name: c for c in spec.crosses}
    assert crosses['age_x_category'].columns == ('age_bucket', 'category')
    assert crosses['age_x_category'].hash_buckets == 1000
    assert spec.auxiliary_names == ('search', 'page_context', 'unclicked')
    assert spec.max_length(spec['hist_query']) == 20 and spec.max_length(spec['hist_item_id']) == 50
    assert {'hist_query_time', 'unclicked_time', 'context_item_id', 'query'} <= set(spec.context_columns)


@pytest.mark.parametrize('mutate, message', [
    (lambda s: s['columns']['price'].update(kind='money'), "columns.price.kind: unknown kind 'money'"),
    (lambda s: s['columns']['price'].update(transform={'type': 'sqrt'}), "columns.price.transform.type: unknown transform 'sqrt'"),
    (lambda s: s['columns']['price'].update(transform={'type': 'vocabulary'}), "'vocabulary' does not apply to a numeric column"),
    (lambda s: s['columns']['city'].update(transform={'type': 'hash'}), 'columns.city.transform.buckets is required'),
    (lambda s: s['columns']['city'].update(colour='red'), "columns.city: unknown option 'colour'"),
    (lambda s: s['columns']['hist_category']['transform'].update(vocabulary='genre'), "no vocabulary named 'genre'"),
    (lambda s: s['columns']['hist_time_gap']['transform'].update(reference='sent_at'), "reference: 'sent_at' is not a scalar timestamp"),
    (lambda s: s['columns']['price_bucket']['transform'].update(boundaries=[3, 1]), 'exactly one of'),
    (lambda s: s['columns']['day_part']['transform'].update(boundaries=[6, 6, 18]), 'strictly increasing'),
    (lambda s: s['columns']['gender'].update(group='household'), "columns.gender.group: 'household'"),
    (lambda s: s['columns']['click'].update(kind='weight'), "at most one column of kind 'weight'"),
    (lambda s: [s['columns'][c].update(kind='ground_truth') for c in ('click', 'cart', 'purchase', 'satisfied')],
     'no column of kind "label"'),
    (lambda s: s['label_roles'].update(conversion='price'), "label_roles.conversion: 'price' is not a column of kind"),
    (lambda s: s['columns']['page_dwell'].update(group='user'), 'a privileged feature is one value per example'),
    (lambda s: s['columns']['page_dwell'].update(transform={'type': 'time_gap', 'reference': 'request_time'}),
     "'time_gap' does not apply to a privileged column"),
    (lambda s: s.update(request_group='page_id'), "request_group: 'page_id'"),
    (lambda s: s.update(negative_sampling_rate=0), 'negative_sampling_rate must be a number in (0, 1]'),
    (lambda s: s.update(negative_sampling_rate=1.5), 'negative_sampling_rate must be a number in (0, 1]'),
    (lambda s: s.update(gauc_group='session_id'), "gauc_group: 'session_id'"),
    (lambda s: s['behavior'].update(max_length=0), 'behavior.max_length must be a positive integer'),
    (lambda s: s['columns']['item_id']['transform'].update(top_k=10), "belong to the shared vocabulary 'item_id'"),
    (lambda s: s.update(crosses=[['age_bucket', 'category']]), 'crosses must be a mapping'),
    (lambda s: s['crosses'].update(x={'columns': ['age_bucket'], 'hash_buckets': 9}),
     'crosses.x.columns must list two or more distinct columns'),
    (lambda s: s['crosses'].update(x={'columns': ['age_bucket', 'age_bucket'], 'hash_buckets': 9}),
     'crosses.x.columns must list two or more distinct columns'),
    (lambda s: s['crosses'].update(x={'columns': ['age_bucket', 'colour'], 'hash_buckets': 9}),
     "crosses.x.columns: 'colour' is not a feature column"),
    (lambda s: s['crosses'].update(x={'columns': ['age_bucket', 'hist_category'], 'hash_buckets': 9}),
     "crosses.x.columns: 'hist_category' is not a categorical feature with one id per example"),
    (lambda s: s['crosses'].update(x={'columns': ['age_bucket', 'price'], 'hash_buckets': 9}),
     "crosses.x.columns: 'price' is not a categorical feature"),
    (lambda s: s['crosses'].update(x={'columns': ['age_bucket', 'click'], 'hash_buckets': 9}),
     "crosses.x.columns: 'click' is not a feature column"),
    (lambda s: s['crosses'].update(x={'columns': ['age_bucket', 'city']}), 'crosses.x.hash_buckets'),
    (lambda s: s['crosses'].update(x={'columns': ['age_bucket', 'city'], 'hash_buckets': 0}),
     'crosses.x.hash_buckets must be a positive integer'),
    (lambda s: s['crosses'].update(x={'columns': ['age_bucket', 'city'], 'hash_buckets': 9, 'weight': 2}),
     "crosses.x: unknown option 'weight'"),
    (lambda s: s['crosses'].update(city={'columns': ['age_bucket', 'gender'], 'hash_buckets': 9}),
     'crosses.city: the name clashes with a column'),
    (lambda s: s['behavior']['sessions'].update(time='request_time'),
     "behavior.sessions.time: 'request_time' is not the source of a timestamp sequence column"),
    (lambda s: s['behavior']['sessions'].update(max_sessions=0), 'behavior.sessions.max_sessions must be a positive'),
    (lambda s: s['behavior']['sessions'].pop('max_length'), 'behavior.sessions.max_length must be a positive'),
    (lambda s: s['behavior']['sessions'].update(gap=3), "behavior.sessions: unknown option 'gap'"),
    (lambda s: s['behavior']['sessions'].update(length_feature='hist_length'), "['hist_length']"),
    (lambda s: s['columns'].update(hist_brand_sessions={'kind': 'numeric', 'group': 'item', 'transform': 'log'}),
     "the session features ['hist_brand_sessions'] clash"),
    (lambda s: s['auxiliary'].update(user={'max_length': 3, 'length_feature': 'n'}), "auxiliary.user: 'user' is a shared"),
    (lambda s: s['auxiliary']['search'].update(max_length=-1), 'auxiliary.search.max_length must be a positive'),
    (lambda s: s['auxiliary']['search'].pop('length_feature'), 'auxiliary.search.length_feature must name'),
    (lambda s: s['auxiliary']['search'].update(length_feature='hist_length'), "the length feature 'hist_length'"),
    (lambda s: s['auxiliary']['search'].update(length_feature='price'), "the length feature 'price'"),
    (lambda s: s['columns']['hist_query'].update(group='item'),
     "columns.hist_query: sequences belong to the behavior group or an auxiliary group, not 'item'"),
    (lambda s: s['columns']['query'].update(group='searches'), "columns.query.group: 'searches' is not one of"),
    (lambda s: s['crosses'].update(x={'columns': ['age_bucket', 'query'], 'hash_buckets': 9}),
     "crosses.x.columns: 'query' is not a categorical feature with one id per example of a shared group"),
])
def test_bad_spec_is_rejected_naming_the_field(raw_spec, mutate, message):
    bad = copy.deepcopy(raw_spec)
    mutate(bad)
    with pytest.raises(spec_lib.SpecError, match=None) as error:
        spec_lib.parse(bad, 'bad.yaml')
    assert message in str(error.value)
    assert str(error.value).startswith('bad.yaml: ')


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(spec_lib.SpecError, match='not found'):
        spec_lib.load(str(tmp_path / 'absent.yaml'))
    broken = tmp_path / 'broken.yaml'
    broken.write_text('columns: [unclosed')
    with pytest.raises(spec_lib.SpecError, match='not valid YAML'):
        spec_lib.load(str(broken))


def test_check_columns_names_missing_and_mistyped_columns():
    spec = spec_lib.load(SPEC_PATH)
    columns = {name: next(c.dtype for c in spec.columns if c.source == name or
                          (c.transform and c.transform.options.get('reference') == name))
               for name in spec.raw_columns}
    spec_lib.check_columns(spec, columns, 'data.tfrecord')  # all present: no error
    without_label = {k: v for k, v in columns.items() if k != 'click'}
    with pytest.raises(spec_lib.SpecError, match="column 'click' is missing from the data in data.tfrecord"):
        spec_lib.check_columns(spec, without_label, 'data.tfrecord')
    with pytest.raises(spec_lib.SpecError, match="columns.price: column 'price' in f.csv holds string values"):
        spec_lib.check_columns(spec, {**columns, 'price': 'string'}, 'f.csv')
    # CSV lists are strings, and integers are valid numbers.
    spec_lib.check_columns(spec, {**columns, 'hist_item_id': 'string', 'price': 'int64'}, 'f.csv')
