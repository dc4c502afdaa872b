"""MinHash, LSH, connected components and near-duplicate quality on labelled real text."""

import glob
import os
import random
import subprocess
import sys

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings, strategies as st

from transforms.dedup import components
from transforms.dedup import minhash as mh
from transforms.dedup import near as nd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- MinHash core

def test_permutations_and_signatures_equal_datasketch_legacy():
    from datasketch import MinHash

    texts = ["The quick brown fox jumps over the lazy dog near the river bank today.",
             "Numbers 1 2 3, punctuation! and UPPER case words; café naïve résumé.",
             "short", ""]
    for num_perm, seed in [(128, 1), (64, 7)]:
        perms = mh.permutations(num_perm, seed)
        ref = MinHash(num_perm=num_perm, seed=seed, scheme="legacy")
        assert np.array_equal(perms[0], ref.permutations[0]) and np.array_equal(perms[1], ref.permutations[1])
        shingler = mh.Shingler(mh.MinHashConfig(num_perm=num_perm, seed=seed, hash="sha1"))
        flat, offsets = shingler.batch(texts)
        for use_numba in (True, False):
            sigs = mh.signatures(flat, offsets, perms, use_numba=use_numba)
            for text, sig in zip(texts, sigs):
                m = MinHash(num_perm=num_perm, seed=seed, scheme="legacy")
                for s in mh.shingle_strings(text):
                    m.update(s.encode("utf-8"))
                assert np.array_equal(sig, m.hashvalues.astype(np.uint32)), (text, use_numba)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), max_size=50), st.integers(1, 2**31))
def test_compiled_and_numpy_signatures_agree(values, seed):
    perms = mh.permutations(32, seed % 10_000)
    flat = np.array(values, dtype=np.uint64)
    offsets = np.array([0, len(values) // 2, len(values)], dtype=np.int64)
    assert np.array_equal(mh.signatures(flat, offsets, perms, True),
                          mh.signatures(flat, offsets, perms, False))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_fast_word_segmentation_matches_the_reference(text):
    words = mh.normalized_bytes(text).split()
    assert [w.decode("utf-8") for w in words] == mh.normalize_words(text)
    # a word's hash depends only on the word
    hashes = mh.word_hashes(mh.normalized_bytes(text))
    again = mh.word_hashes(b" ".join(words))
    assert np.array_equal(hashes, again) and len(hashes) == len(words)


def test_fast_shingles_are_order_sensitive_stable_and_process_independent():
    sh = mh.Shingler(mh.MinHashConfig())
    a = sh.hashes("one two three four five six")
    assert len(a) == 2
    assert not np.array_equal(a, sh.hashes("six five four three two one"))
    assert np.array_equal(a, sh.hashes("One, two; three four FIVE six!"))  # normalised
    code = ("import sys; sys.path.insert(0, %r); from transforms.dedup import minhash as mh; "
            "print(mh.Shingler(mh.MinHashConfig()).hashes('one two three four five six').tolist())" % ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}).stdout
    assert out.strip() == str(a.tolist())
    chars = mh.Shingler(mh.MinHashConfig(char_ngram=3)).hashes("東京都に住む")
    assert len(chars) == 4


def test_lsh_parameters_are_datasketchs():
    from datasketch import MinHashLSH

    for threshold in (0.5, 0.6, 0.8, 0.9):
        for num_perm in (64, 128):
            lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
            assert mh.optimal_lsh_params(threshold, num_perm) == (lsh.b, lsh.r)
    lsh = MinHashLSH(threshold=0.8, num_perm=128, weights=(0.2, 0.8))
    assert mh.optimal_lsh_params(0.8, 128, 0.2, 0.8) == (lsh.b, lsh.r)


def test_lsh_parameters_equal_the_quad_search_without_scipy(monkeypatch):
    """Exact areas choose what scipy's quad chooses; the default run imports no scipy."""
    import subprocess
    import sys

    for threshold in [round(0.05 * i, 2) for i in range(1, 20)]:
        for num_perm in (16, 64, 128):
            for weights in ((0.5, 0.5), (0.2, 0.8), (0.9, 0.1)):
                assert (mh.optimal_lsh_params(threshold, num_perm, *weights)
                        == mh._optimal_lsh_params_by_quad(threshold, num_perm, *weights)), \
                    (threshold, num_perm, weights)
    # a near tie goes to quad: with every pair "near", quad alone decides
    monkeypatch.setattr(mh, "_NEAR_TIE", 10.0)
    for threshold, num_perm in ((0.6, 64), (0.85, 32)):
        assert mh.optimal_lsh_params(threshold, num_perm) == mh._optimal_lsh_params_by_quad(
            threshold, num_perm)
    code = ("import sys; from transforms.dedup import near; "
            "print(near.NearDedupConfig().lsh_params(), 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False", out.stdout


def test_config_rejects_bad_parameters():
    with pytest.raises(ValueError):
        mh.MinHashConfig(threshold=1.5)
    with pytest.raises(ValueError):
        mh.MinHashConfig(bands=20, rows=10)  # 200 > 128 permutations
    with pytest.raises(ValueError):
        nd.NearDedupConfig(verify="maybe")


# ---------------------------------------------------------------- buckets and stars

def test_bucket_pairs_and_similarity():
    assert components.bucket_pairs(["b", "a", "c", "a"], 64) == [("b", "a"), ("c", "a"), ("c", "b")]
    big = components.bucket_pairs([f"id{i:03d}" for i in range(10)], 3)
    assert len(big) == 7 * 3 + 2 + 1 and ("id003", "id000") in big and ("id004", "id000") not in big
    perms = mh.permutations(128, 1)
    sh = mh.Shingler(mh.MinHashConfig())
    base = " ".join(f"word{i}" for i in range(200))
    near = base.replace("word100", "changed")
    far = " ".join(f"other{i}" for i in range(200))
    flat, off = sh.batch([base, near, far])
    sigs = mh.signatures(flat, off, perms)
    assert nd.similarity(sigs[0].tobytes(), sigs[1].tobytes(), "estimate") > 0.85
    assert nd.similarity(sigs[0].tobytes(), sigs[2].tobytes(), "estimate") < 0.05
    sets = [np.unique(flat[off[i]:off[i + 1]]).astype(np.uint32).tobytes() for i in range(3)]
    assert nd.similarity(sets[0], sets[1], "exact") == pytest.approx(191 / 201)  # 5 shingles swapped
    assert nd.similarity(sets[0], sets[2], "exact") == 0.0
    accept = nd.JaccardAtLeast("estimate", 0.85)
    assert accept(sigs[0].tobytes(), sigs[1].tobytes()) and not accept(sigs[0].tobytes(), sigs[2].tobytes())


def _components_reference(edges):
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in list(parent)}


def _runner():
    from beam_pipelines.runner import local_runner

    return local_runner()


@pytest.mark.parametrize("graph", ["chain", "random", "two_stars"])
def test_star_rounds_converge_to_component_minimum(graph):
    rng = random.Random(5)
    ids = [f"n{i:03d}" for i in range(80)]
    if graph == "chain":  # the worst case for label propagation: a long path, shuffled ids
        order = ids[:]
        rng.shuffle(order)
        edges = [(max(a, b), min(a, b)) for a, b in zip(order, order[1:])]
    elif graph == "random":
        edges = {tuple(sorted(rng.sample(ids, 2), reverse=True)) for _ in range(70)}
        edges = sorted(edges)
    else:
        edges = [(ids[i], ids[0]) for i in range(1, 20)] + [(ids[i], ids[40]) for i in range(41, 60)]
        edges.append((ids[40], ids[10]))
    expected = _components_reference(edges)
    expected_edges = sorted((node, root) for node, root in expected.items() if node != root)
    rounds = 10
    with TestPipeline(runner=_runner()) as p:
        pcoll = p | beam.Create(edges)
        changes = []
        for i in range(rounds):
            pcoll, ch = pcoll | f"Round{i}" >> components.StarRound(i)
            changes.append(ch)
        assert_that(pcoll, equal_to(expected_edges), label="star")
        last = changes[-1] | "LastChanges" >> beam.Map(lambda kv: kv[1])
        assert_that(last, equal_to([0]), label="converged")


def _within_one(a, b):
    return abs(a - b) <= 1


@pytest.mark.parametrize("accept", [_within_one, None])
def test_engine_with_a_pluggable_predicate(accept, local_runner):
    """The shared engine: one bucket of four nodes; the predicate decides which pairs are edges."""
    from transforms.accounting import Sample, node_id

    records = [{"id": i, "text": "", "source": "s", "position": k, "key": i, "meta": {}}
               for k, i in enumerate(["a", "b", "c", "d", "e"])]
    value = {"a": 10, "b": 11, "c": 12, "d": 20, "e": 30}
    with TestPipeline(runner=local_runner) as p:
        recs = p | "Records" >> beam.Create(records)
        inputs = {"records": recs,
                  "bands": recs | "Bands" >> beam.FlatMap(
                      lambda r: [("bucket", node_id(r))] if r["id"] != "e" else [])}
        if accept is not None:
            inputs["payloads"] = recs | "Payloads" >> beam.Map(lambda r: (node_id(r), value[r["id"]]))
        out = inputs | components.RemoveNearDuplicates(accept, counter="test", clusters=True)
        kept = ["a", "d", "e"] if accept else ["a", "e"]
        assert_that(out["records"] | beam.Map(lambda r: r["id"]), equal_to(kept), label="survivors")
        members = ["a", "b", "c"] if accept else ["a", "b", "c", "d"]
        assert_that(out["clusters"], equal_to([
            {"id": m, "cluster_id": "a", "cluster_size": len(members)} for m in members]),
            label="clusters")
        counts = (out["counts"]
                  | beam.Filter(lambda kv: not isinstance(kv, Sample) and not kv[0][1].startswith("near_dedup.round_"))
                  | beam.CombinePerKey(sum))
        expected = [(("duplicates", "near"), len(members) - 1), (("info", "near_dedup.bucket_pairs"), 6),
                    ((components.HIST_CLUSTER_SIZE, str(len(members))), 1)]
        if accept:
            expected += [(("info", "test.pairs_compared"), 6), (("info", "test.pairs_accepted"), 2)]
        assert_that(counts, equal_to(expected), label="counts")


# ---------------------------------------------------------------- quality on labelled real text

def _real_paragraph_pool():
    """Words of every readable page of the sample corpus (real English prose), cleaned."""
    from beam_pipelines import demo
    from transforms.read import corpus as readers
    from transforms.text.clean import Cleaner

    cleaner, words, seen = Cleaner(), [], set()
    config = readers.ReaderConfig()
    for pattern in demo.sample_inputs():
        for path in sorted(glob.glob(pattern)):
            for task in readers.plan_reads(path, os.path.getsize(path), path, config):
                if isinstance(task, dict):
                    continue
                for kind, rec in readers.read_task(task, config):
                    if kind != "record":
                        continue
                    out, _ = cleaner(rec)
                    if out and out["text"] not in seen:
                        seen.add(out["text"])
                        words += out["text"].split()
    return words


def _jaccard(a, b):
    sa, sb = set(mh.shingle_strings(a)), set(mh.shingle_strings(b))
    return len(sa & sb) / len(sa | sb)


def _edit(words, n_edits, rng, vocab):
    words = list(words)
    for _ in range(n_edits):
        op = rng.random()
        i = rng.randrange(len(words))
        if op < 0.6:
            words[i] = rng.choice(vocab)
        elif op < 0.8:
            del words[i]
        else:
            words.insert(i, rng.choice(vocab))
    return words


def _edited_to(base, lo, hi, rng, vocab, start=1):
    """A copy of ``base`` (a word list) with random edits, its Jaccard to base in [lo, hi]."""
    n = start
    for _ in range(200):
        cand = _edit(base, n, rng, vocab)
        j = _jaccard(" ".join(base), " ".join(cand))
        if lo <= j <= hi:
            return cand, j
        n = n + 1 if j > hi else max(1, n - 1)
    raise AssertionError("could not reach the Jaccard band")


@pytest.fixture(scope="module")
def labelled():
    rng = random.Random(2024)
    pool = _real_paragraph_pool()
    vocab = sorted(set(pool))
    length = 120
    bases = [pool[i:i + length] for i in range(0, len(pool) - length, length)]
    # keep bases unrelated to each other
    kept = []
    shingles = []
    for b in bases:
        s = set(mh.shingle_strings(" ".join(b)))
        if len(s) > 50 and all(len(s & t) / len(s | t) < 0.2 for t in shingles):
            kept.append(b)
            shingles.append(s)
    rng.shuffle(kept)
    assert len(kept) >= 300, len(kept)
    docs, groups, low_pairs, singles = {}, [], [], []
    n_groups, n_pairs = 110, 80
    for g, base in enumerate(kept[:n_groups]):
        size = rng.choice([2, 2, 3, 4])
        members = [base] + [_edited_to(base, 0.86, 0.97, rng, vocab)[0] for _ in range(size - 1)]
        texts = [" ".join(m) for m in members]
        if min(_jaccard(a, b) for i, a in enumerate(texts) for b in texts[i + 1:]) < 0.8:
            continue  # the label is pairwise Jaccard >= 0.8: drop groups that miss it
        ids = [f"g{g:03d}-{k}" for k in range(size)]
        rng.shuffle(ids)  # the survivor must be the smallest id, not the original
        groups.append(ids)
        docs.update(zip(ids, texts))
    for k, base in enumerate(kept[n_groups:n_groups + n_pairs]):
        other, j = _edited_to(base, 0.25, 0.5, rng, vocab, start=20)
        ids = [f"p{k:03d}-a", f"p{k:03d}-b"]
        low_pairs.append(ids)
        docs.update(zip(ids, [" ".join(base), " ".join(other)]))
    for k, base in enumerate(kept[n_groups + n_pairs:]):
        singles.append(f"s{k:03d}")
        docs[f"s{k:03d}"] = " ".join(base)
    return docs, groups, low_pairs, singles


def _survivors(docs, tmp_path, config=nd.NearDedupConfig(), order_seed=0):
    records = [{"id": i, "text": t, "source": "x", "position": 0, "meta": {}} for i, t in docs.items()]
    random.Random(order_seed).shuffle(records)
    prefix = str(tmp_path / f"survivors-{order_seed}")
    with TestPipeline(runner=_runner()) as p:
        out = p | beam.Create(records) | nd.NearDedup(config)
        _ = out["records"] | beam.Map(lambda r: r["id"]) | beam.io.WriteToText(prefix)
    ids = set()
    for path in glob.glob(prefix + "*"):
        ids.update(line.strip() for line in open(path) if line.strip())
    return ids


@pytest.mark.slow
def test_near_duplicate_quality_on_labelled_real_text(labelled, tmp_path):
    docs, groups, low_pairs, singles = labelled
    assert len(groups) >= 90 and len(low_pairs) >= 70 and len(singles) >= 50
    survivors = _survivors(docs, tmp_path)
    collapsed = sum(1 for g in groups if [i for i in g if i in survivors] == [min(g)])
    both = sum(1 for a, b in low_pairs if a in survivors and b in survivors)
    assert collapsed / len(groups) >= 0.98, (collapsed, len(groups))
    assert both / len(low_pairs) >= 0.99, (both, len(low_pairs))
    assert all(s in survivors for s in singles)
    # deterministic: another arrival order gives the same survivors
    assert _survivors(docs, tmp_path, order_seed=1) == survivors


def test_near_dedup_counts_and_clusters(local_runner):
    from apache_beam.testing.util import assert_that, equal_to

    base = " ".join(f"token{i}" for i in range(100))
    docs = {"b": base, "a": base.replace("token50", "x"), "c": "completely different text " * 10,
            "empty": "!!! ???"}
    records = [{"id": i, "text": t, "source": "x", "position": 0, "meta": {}} for i, t in docs.items()]
    with TestPipeline(runner=local_runner) as p:
        out = p | beam.Create(records) | nd.NearDedup()
        assert_that(out["records"] | beam.Map(lambda r: r["id"]), equal_to(["a", "c", "empty"]),
                    label="survivors")
        from transforms.accounting import Sample

        counts = (out["counts"]
                  | beam.Filter(lambda kv: not isinstance(kv, Sample) and not kv[0][0].startswith("time_"))
                  | beam.Filter(lambda kv: not kv[0][1].startswith(("near_dedup.round_", "near_dedup.bucket")))
                  | beam.CombinePerKey(sum))
        assert_that(counts, equal_to([
            (("duplicates", "near"), 1), (("info", "near_dedup.no_shingles"), 1),
            (("info", "near_dedup.pairs_compared"), 1), (("info", "near_dedup.pairs_accepted"), 1),
            ((nd.HIST_CLUSTER_SIZE, "2"), 1)]), label="counts")
        assert_that(out["clusters"], equal_to([
            {"id": "a", "cluster_id": "a", "cluster_size": 2},
            {"id": "b", "cluster_id": "a", "cluster_size": 2}]), label="clusters")


@pytest.mark.parametrize("verify", ["estimate", "exact", "none"])
def test_the_same_records_survive_whatever_the_verification(verify, local_runner):
    """Each verification mode keeps one of a near pair and every other record, those
    without shingles too, unchanged."""
    from apache_beam.testing.util import assert_that, equal_to

    base = " ".join(f"token{i}" for i in range(100))
    docs = {"b": base, "a": base.replace("token50", "x"), "c": "completely different text " * 10,
            "empty": "!!! ???", "d": "another unrelated page of words " * 8}
    records = [{"id": i, "text": t, "source": "x", "position": 0, "meta": {}} for i, t in docs.items()]
    with TestPipeline(runner=local_runner) as p:
        out = p | beam.Create(records) | nd.NearDedup(nd.NearDedupConfig(verify=verify))
        assert_that(out["records"] | beam.Map(lambda r: (r["id"], r["text"])),
                    equal_to([(i, docs[i]) for i in ("a", "c", "d", "empty")]))


@pytest.mark.slow
def test_exact_verification_meets_the_same_quality(labelled, tmp_path):
    docs, groups, low_pairs, singles = labelled
    survivors = _survivors(docs, tmp_path, nd.NearDedupConfig(verify="exact"))
    collapsed = sum(1 for g in groups if [i for i in g if i in survivors] == [min(g)])
    both = sum(1 for a, b in low_pairs if a in survivors and b in survivors)
    assert collapsed / len(groups) >= 0.98 and both / len(low_pairs) >= 0.99
    assert all(s in survivors for s in singles)


def test_batch_shingles_equal_the_per_document_hashes():
    """The compiled batch path (word shingles of many documents at once) gives
    exactly what :meth:`Shingler.hashes` gives document by document, for mixed
    batches (ASCII, accents, case changes, CJK pages shingled by characters,
    lone surrogates, emoji, empty and one-word documents) and several n."""
    import random

    rng = random.Random(11)
    vocab = ["the", "Cat", "SAT", "l'eau", "Straße", "İstanbul", "ÉTÉ", "naïve", "東京都に住む", "x²",
             "_a", "🙂", "\udcff", "...", "—", "\u00a0", "\n", "", "don't", "e\u0301", "١٢٣"]
    texts = ["", "one", "東京都に住む人は多い。東京都に住む人は多い。"]
    texts += [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 40))) for _ in range(400)]
    for config in (mh.MinHashConfig(), mh.MinHashConfig(ngram=1), mh.MinHashConfig(ngram=13),
                   mh.MinHashConfig(char_ngram=4)):
        sh = mh.Shingler(config)
        for start in range(0, len(texts), 64):
            batch = texts[start:start + 64]
            languages = [rng.choice([None, "en", "ja"]) for _ in batch]
            flat, offsets = sh.batch(batch, languages)
            expected = [sh.hashes(t, lang) for t, lang in zip(batch, languages)]
            assert offsets.tolist() == np.cumsum([0] + [len(e) for e in expected]).tolist()
            assert flat.tolist() == np.concatenate(expected).tolist()


@pytest.mark.parametrize("bands,rows", [(18, 7), (1, 128), (32, 4), (9, 14)])
def test_band_keys_agree_exactly_when_a_whole_band_agrees(bands, rows):
    rng = np.random.default_rng(bands)
    sigs = rng.integers(0, 2**32, size=(40, 128), dtype=np.uint64).astype(np.uint32)
    sigs[1, rows:2 * rows] = sigs[0, rows:2 * rows]  # one band shared by two documents
    sigs[2, :rows] = sigs[3, :rows]
    sigs[2, rows - 1] ^= 1  # a first band that differs from document 3's in one value
    batch = mh.band_keys_batch(sigs, bands, rows)
    # a key depends on the band and its values only: not on the batch, nor on the other bands
    assert batch == [mh.band_keys(s, bands, rows) for s in sigs]
    assert mh.band_keys_batch(sigs[5:7], bands, rows) == batch[5:7]
    assert all(len(keys) == bands and all(len(k) == 12 for k in keys) for keys in batch)
    assert all(int.from_bytes(k[:2], "little") == b for keys in batch for b, k in enumerate(keys))
    distinct = {k for keys in batch for k in keys}
    if bands > 1:
        assert batch[0][1] == batch[1][1] and batch[0][0] != batch[1][0]
        assert len(distinct) == 40 * bands - 1  # the shared band, and no other collision
    assert batch[2][0] != batch[3][0]
    # equal values in different bands give different keys
    same = np.tile(sigs[0, :rows], 128 // rows + 1)[None, :128]
    assert len(set(mh.band_keys(same[0], bands, rows))) == bands
    with pytest.raises(ValueError):
        mh.band_keys_batch(sigs[:, :rows], bands + 1, rows)


def _rounds_reference(edges, rounds):
    """StarRound in plain Python: the edges after ``rounds`` rounds and each round's changes
    (edges in its input or its output, not both)."""
    from collections import defaultdict

    current, counts = list(edges), []
    for _ in range(rounds):
        nbrs = defaultdict(set)
        for a, b in current:
            nbrs[a].add(b)
            nbrs[b].add(a)
        smaller = defaultdict(list)
        for node, ns in nbrs.items():
            for v, m in components.large_star(node, ns):
                smaller[v].append(m)
        new = [e for node, ms in smaller.items() for e in components.small_star(node, ms)]
        counts.append(len(set(current) ^ set(new)))
        current = new
    return sorted(set(current)), counts


@pytest.mark.parametrize("graph,rounds", [("chain", 10), ("random", 3), ("random", 1), ("stars", 4)])
def test_connected_components_count_each_rounds_changes(graph, rounds):
    """The rounds count their changes inside the next round's grouping (two shuffles per
    round): the stars and every round's count (zeros included) are those of the rounds
    done one by one in plain Python."""
    rng = random.Random(len(graph) * 10 + rounds)
    ids = [f"n{i:03d}" for i in range(60)]
    if graph == "chain":
        order = ids[:]
        rng.shuffle(order)
        edges = [(max(a, b), min(a, b)) for a, b in zip(order, order[1:])]
    elif graph == "random":
        edges = [tuple(sorted(rng.sample(ids, 2), reverse=True)) for _ in range(70)]
        edges += edges[:5]  # duplicate edges count once
    else:
        edges = [(ids[i], ids[0]) for i in range(1, 20)] + [(ids[i], ids[30]) for i in range(31, 50)]
        edges += [(ids[30], ids[5]), (ids[25], ids[24])]
    stars, counts = _rounds_reference(edges, rounds)
    assert sum(counts) > 0
    with TestPipeline(runner=_runner()) as p:
        got = p | beam.Create(edges) | components.ConnectedComponents(rounds)
        # an edge may come out twice (duplicate edges need no Distinct between rounds)
        assert_that(got["edges"] | beam.Distinct(), equal_to(stars), label="stars")
        totals = (got[components.accounting.COUNTS] | beam.CombinePerKey(sum)
                  | beam.Map(lambda kv: (kv[0][1], kv[1])))
        assert_that(totals, equal_to([(f"near_dedup.round_{i:02d}_changes", n)
                                      for i, n in enumerate(counts)]), label="changes")
