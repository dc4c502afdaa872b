import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms import accounting
from transforms.dedup.exact import ExactDedup


def _rec(rid, text):
    return {"id": rid, "text": text, "source": "s", "position": 0, "meta": {}}


def test_one_survivor_per_text_smallest_id(local_runner):
    records = [
        _rec("b", "Same text here."), _rec("a", "same   TEXT here."), _rec("c", "Same text here."),
        _rec("z", "Unique one."), _rec("y", "Another unique."), _rec("m", "another unique."),
    ]
    p = TestPipeline(runner=local_runner)
    out = p | beam.Create(records) | ExactDedup()
    assert_that(out.records | "Ids" >> beam.Map(lambda r: r["id"]), equal_to(["a", "z", "m"]),
                label="survivors")
    assert_that(out[accounting.COUNTS] | beam.CombinePerKey(sum),
                equal_to([((accounting.DUPLICATES, "exact"), 3)]), label="counts")
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name("duplicates.exact"))["counters"]
    assert sum(c.committed for c in counters) == 3


def test_survivor_does_not_depend_on_order(local_runner):
    records = [_rec(f"id{i:03d}", "dup text") for i in range(50)]
    for order in (records, list(reversed(records))):
        with TestPipeline(runner=local_runner) as p:
            out = p | beam.Create(order) | ExactDedup()
            assert_that(out.records | beam.Map(lambda r: r["id"]), equal_to(["id000"]))


def test_image_exact_dedup_is_exact_dedup_on_its_own_fingerprint(local_runner):
    from transforms.image.steps import ImageExactDedup, source_key

    def img(rid, sha, text=""):
        return dict(_rec(rid, text), source_sha256=sha)

    records = [img("b", "s1"), img("a", "s1"), img("c", "s2"), img("d", "s2", "A caption"),
               img("e", "s2", "a  CAPTION")]
    assert source_key(records[3]) == source_key(records[4]) != source_key(records[2])
    with TestPipeline(runner=local_runner) as p:
        out = p | beam.Create(records) | ImageExactDedup()
        assert_that(out.records | beam.Map(lambda r: r["id"]), equal_to(["a", "c", "d"]),
                    label="survivors")
        assert_that(out[accounting.COUNTS] | beam.CombinePerKey(sum),
                    equal_to([((accounting.DUPLICATES, "exact"), 2)]), label="counts")
